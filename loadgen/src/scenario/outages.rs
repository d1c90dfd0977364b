//! Seed tests 5 and 6: a node stopped (mid-answer) and started again, Redis
//! stopped and started again, with clients connected throughout.

use crate::scenario::basics::{answer_whole, nodes_logging};
use crate::scenario::checks::Sequence;
use crate::scenario::client::{Client, End, session_url};
use crate::scenario::evidence::{Sheet, Stop};
use crate::scenario::nodes::{NodeTarget, wait_for};
use crate::scenario::setup::Env;
use crate::scenario::streams::timing;
use protocol::StreamStatus;
use std::time::Duration;
use tokio::time::Instant;

/// Run a blocking fault action without stalling the runtime's other tasks
/// (the clients' sockets keep being read meanwhile).
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Connect (to `url`) and echo once, retrying every 200 ms until `wait` passes.
async fn reconnect(url: &str, wait: Duration) -> Result<Client, String> {
    let deadline = Instant::now() + wait;
    let mut last = String::new();
    while Instant::now() < deadline {
        match Client::connect(url, Duration::from_secs(2)).await {
            Ok(mut c) => match c.echo(1, Duration::from_secs(2)).await {
                Ok(_) => return Ok(c),
                Err(e) => last = e,
            },
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("no working connection within {wait:?}: {last}"))
}

/// Test 5: one client per node; node 1 is stopped while it streams an
/// answer to its client; the client sees the disconnect, reconnects through
/// the balancer to a healthy node, finds its session, and recovers the cut
/// answer whole: another node took it over and finished it (no gap, no
/// duplicate, none interrupted; Recovery Time graded). The others carry on;
/// node 1 starts again and takes connections.
pub async fn failover(env: &mut Env, s: &mut Sheet) -> Result<(), Stop> {
    env.control.can_restart_node()?;
    env.need_nodes(2)?;
    let st = env.settings.clone();
    let mut clients = Vec::new();
    for (i, n) in env.nodes.iter().enumerate().take(3) {
        let sid = env.session(&format!("failover{}", i + 1));
        clients.push((
            sid.clone(),
            Client::connect(&session_url(&n.ws, &sid, None), st.step).await?,
        ));
    }
    let (sid1, c1) = &mut clients[0];
    let sid1 = sid1.clone();
    let token1 = c1.welcome.token.clone();
    let node1_id = c1.welcome.node_id.clone();
    let mid = format!("{sid1}-m1");
    c1.chat(&mid, st.chunks, st.interval_ms);
    let (ok, line) = answer_whole(&c1.collect(&mid, st.answer_wait()).await, st.chunks);
    s.note(format!(
        "client 1 on node1 ({node1_id}) had an answer before the stop: {line}"
    ));
    if !ok {
        return Err(Stop::Abort(format!(
            "the answer before the stop was not whole: {line}"
        )));
    }
    // A second answer, paced so that the stop cuts it mid-stream.
    let cut_mid = format!("{sid1}-m2");
    let cut_interval = st.interval_ms.max(CUT_INTERVAL_MS);
    c1.chat(&cut_mid, st.chunks, cut_interval);
    let before = c1
        .collect_until(&cut_mid, st.answer_wait(), (st.chunks / 6).max(1))
        .await;
    let holder_before = env
        .store
        .as_ref()
        .and_then(|store| store.stream_holder(&cut_mid).ok().flatten());

    let stopped_at = Instant::now();
    let did = blocking(|| env.control.stop_node(0, st.crash))?;
    s.note(did);
    // Whatever node 1 still sent, until its connection ended.
    let tail = clients[0].1.collect(&cut_mid, st.step).await;
    let cut = tail.end == End::Closed;
    let ended = if cut {
        Some("ended".to_string())
    } else {
        let code = clients[0].1.wait_closed(st.step).await;
        code.map(|c| format!("ended (close code {c:?})"))
    };
    let closed_at = Instant::now();
    let mut got = before.indices.clone();
    got.extend(&tail.indices);
    s.check(
        "Client 1 detects disconnect",
        ended.is_some(),
        format!(
            "client 1's connection {} {} chunks into answer {cut_mid}",
            ended.as_deref().unwrap_or("did not end"),
            got.len()
        ),
    );

    let url = session_url(&env.balancer, &sid1, Some(&token1));
    let r = reconnect(&url, st.step * 3).await;
    let failover_ms = stopped_at.elapsed().as_secs_f64() * 1000.0;
    let mut r = match r {
        Ok(r) => r,
        Err(e) => {
            s.check("Client reconnects successfully", false, e);
            let _ = blocking(|| env.control.start_node(0));
            return Ok(());
        }
    };
    s.check(
        "Client reconnects successfully",
        r.welcome.node_id != node1_id,
        format!(
            "through the balancer to node {} (node1 is {node1_id}) and echoed, {failover_ms:.0} ms after the stop",
            r.welcome.node_id
        ),
    );
    s.timings.push(timing("Failover Time", failover_ms));

    let last = got.iter().max().copied();
    r.recover(&cut_mid, last.map(i64::from));
    let rest = r.collect(&cut_mid, st.answer_wait()).await;
    let moved = rest.first_chunk.unwrap_or_else(Instant::now);
    let recovery_ms = moved.saturating_duration_since(closed_at).as_secs_f64() * 1000.0;
    got.extend(&rest.indices);
    let seq = Sequence::of(&got, st.chunks);
    let bad_text = before.bad_text + tail.bad_text + rest.bad_text;
    let whole = rest.end == End::Done(st.chunks) && seq.whole() && bad_text == 0;
    s.check(
        "Answer cut by the stop completes on another node",
        cut && whole,
        if cut {
            format!(
                "recovered on {} after index {last:?}: {} more chunks, end {:?}; together {}, {bad_text} with wrong text",
                r.welcome.node_id,
                rest.indices.len(),
                rest.end,
                seq.describe(got.len())
            )
        } else {
            format!(
                "the answer was not cut: it ended {:?} before the connection did (raise --chunk-interval-ms)",
                tail.end
            )
        },
    );
    if cut {
        s.timings.push(timing("Recovery Time", recovery_ms));
        s.note(format!(
            "Recovery Time {recovery_ms:.0} ms (from the cut until the answer moved again on the new connection)"
        ));
    }
    take_over_evidence(env, s, &cut_mid, holder_before);

    let listed = r
        .welcome
        .streams
        .iter()
        .any(|x| x.message_id == mid && x.status == StreamStatus::Done);
    r.recover(&mid, None);
    let (whole, line) = answer_whole(&r.collect(&mid, st.answer_wait()).await, st.chunks);
    s.check(
        "Session state preserved",
        r.welcome.session_id == sid1 && listed && whole,
        format!(
            "welcome on the new node: session {}, its streams list {mid} done: {listed}; recovered from the start: {line}",
            r.welcome.session_id
        ),
    );

    let mut others = Vec::new();
    let mut others_ok = true;
    for (i, (sid, c)) in clients.iter_mut().enumerate().skip(1) {
        let m = format!("{sid}-m1");
        c.chat(&m, st.chunks, st.interval_ms);
        let (ok, line) = answer_whole(&c.collect(&m, st.answer_wait()).await, st.chunks);
        let healthy = env.nodes[i].healthy();
        others_ok &= ok && healthy;
        others.push(format!(
            "client {} on node{}: /health ok {healthy}, answer {line}",
            i + 1,
            i + 1
        ));
    }
    s.check("Other nodes unaffected", others_ok, others.join("; "));

    let did = blocking(|| env.control.start_node(0))?;
    s.note(did);
    let node = env.nodes[0].clone();
    let healthy = wait_for(st.step * 3, || node.healthy()).await;
    let up = wait_for(st.step, || distributed_up(&node)).await;
    let rejoined = match reconnect(
        &session_url(&node.ws, &env.session("failover-new"), None),
        st.step,
    )
    .await
    {
        Ok(c) => format!(
            "a new connection to node1 welcomed by {} and echoed",
            c.welcome.node_id
        ),
        Err(e) => format!("FAILED: {e}"),
    };
    s.check(
        "Node 1 rejoins without issues",
        healthy && up && !rejoined.starts_with("FAILED"),
        format!(
            "node1 /health 200: {healthy}; /health/distributed status UP (broker connected): {up}; {rejoined}"
        ),
    );
    Ok(())
}

/// Milliseconds at least between the chunks of the answer the stop cuts,
/// so a stop command has time to act before it ends.
const CUT_INTERVAL_MS: u64 = 20;

/// Who finished the cut answer, from wsnode's `stream:meta:{id}` (another
/// node, with a higher fencing token than node 1 held) and the nodes' logs
/// (one `Stream lease taken over` for it). A deployment that keeps neither
/// gets a note: its take-over is judged by the answer alone.
fn take_over_evidence(env: &Env, s: &mut Sheet, mid: &str, before: Option<(String, u64)>) {
    let Some(store) = env.store.as_ref() else {
        s.note("no --redis: the take-over's fencing token is not checked");
        return;
    };
    let after = match store.stream_holder(mid) {
        Ok(after) => after,
        Err(e) => {
            s.note(format!("the take-over's fencing token is not checked: {e}"));
            return;
        }
    };
    let (Some((n0, f0)), Some((n1, f1))) = (before, after) else {
        s.note(format!(
            "no stream:meta:{mid} in Redis (a node other than wsnode): the take-over's fencing token is not checked"
        ));
        return;
    };
    let logged = nodes_logging(&env.nodes, &["Stream lease taken over", mid]);
    let once = logged
        .as_ref()
        .is_none_or(|hits| hits.iter().map(|h| h.1).sum::<usize>() == 1);
    s.check(
        "Taken over once, with a higher fencing token",
        n1 != n0 && f1 > f0 && once,
        format!(
            "HMGET stream:meta:{mid} node fence: {n0} {f0} before the stop, {n1} {f1} after; \"Stream lease taken over\" logged by nodes (number, lines) {}",
            logged.map_or("unknown (no node logs)".into(), |h| format!("{h:?}"))
        ),
    );
}

/// `GET /health/distributed` says `"status":"UP"` (its broker is connected).
fn distributed_up(node: &NodeTarget) -> bool {
    node.get("/health/distributed")
        .is_ok_and(|(code, body)| code == 200 && body.contains("\"status\":\"UP\""))
}

/// Lines of every node's log with all of `needles` (0 for a node whose log is unknown).
fn log_total(env: &Env, needles: &[&str]) -> Option<usize> {
    let counts: Option<Vec<usize>> = env.nodes.iter().map(|n| n.log_count(needles)).collect();
    counts.map(|c| c.iter().sum())
}

/// Test 6: Redis stops under connected clients: they get error frames, the
/// nodes stay up and log it; Redis starts again and within seconds new
/// connections and answers work, whole.
pub async fn redis_failure(env: &mut Env, s: &mut Sheet) -> Result<(), Stop> {
    env.control.can_restart_redis()?;
    env.store()?;
    let st = env.settings.clone();
    let sid = env.session("redis");
    let mut c = Client::connect(&session_url(&env.balancer, &sid, None), st.step).await?;
    let errors_before = log_total(env, &["Redis"]);

    let did = blocking(|| env.control.stop_redis())?;
    s.note(did);
    let mid = format!("{sid}-m1");
    c.chat(&mid, st.chunks, st.interval_ms);
    let a = c.collect(&mid, st.step * 2).await;
    s.check(
        "Clients receive error messages",
        matches!(&a.end, End::Error(e) if e.contains("BrokerUnavailable"))
            || matches!(a.end, End::Interrupted(_)),
        format!(
            "a chat while Redis is down ended {:?} after {} chunks",
            a.end,
            a.indices.len()
        ),
    );
    let fresh = Client::connect(
        &session_url(&env.balancer, &env.session("redis-new"), None),
        st.step,
    )
    .await;
    s.note(format!(
        "a new connection while Redis is down: {}",
        match &fresh {
            Ok(c) => format!("welcomed by {}", c.welcome.node_id),
            Err(e) => e.clone(),
        }
    ));
    let answering: Vec<String> = env
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| match n.get("/health") {
            Ok((code, _)) => format!("node{} HTTP {code}", i + 1),
            Err(e) => format!("node{} {e}", i + 1),
        })
        .collect();
    let up = answering.iter().all(|l| l.contains("HTTP"));
    s.check(
        "No crashes (fail gracefully)",
        up,
        format!(
            "while Redis is down, /health answers: {}",
            answering.join(", ")
        ),
    );
    let errors_after = log_total(env, &["Redis"]);
    match (errors_before, errors_after) {
        (Some(b), Some(a)) => {
            s.check(
                "Error messages logged",
                a > b,
                format!("node log lines mentioning Redis: {b} before the stop, {a} during it"),
            );
        }
        _ => s.note("no node logs (--node-log): logged errors not checked"),
    }

    let did = blocking(|| env.control.start_redis())?;
    s.note(did);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(15).max(st.step);
    let mut outcome = String::from("never tried");
    let mut recovered = None;
    let mut n = 0;
    while Instant::now() < deadline {
        n += 1;
        let sid2 = env.session(&format!("redis-after{n}"));
        match Client::connect(
            &session_url(&env.balancer, &sid2, None),
            Duration::from_secs(2),
        )
        .await
        {
            Ok(mut c2) => {
                let m2 = format!("{sid2}-m1");
                c2.chat(&m2, st.chunks, st.interval_ms);
                let (ok, line) = answer_whole(&c2.collect(&m2, st.answer_wait()).await, st.chunks);
                outcome = format!("attempt {n}: {line}");
                if ok {
                    recovered = Some((m2, started.elapsed()));
                    break;
                }
            }
            Err(e) => outcome = format!("attempt {n}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let nodes = env.nodes.clone();
    let all_up = wait_for(st.step, || nodes.iter().all(distributed_up)).await;
    let answer = match &recovered {
        Some((_, t)) => format!(
            "a new connection's answer was whole {:.1} s after the restart ({outcome})",
            t.as_secs_f64()
        ),
        None => format!("nothing worked within 15 s: {outcome}"),
    };
    s.check(
        "System recovers after Redis restart",
        recovered.is_some() && all_up,
        format!("{answer}; every node's /health/distributed says UP: {all_up}"),
    );
    if let Some((m2, _)) = recovered {
        let (q, other, line) = env.store()?.cached_sequence(&m2, st.chunks)?;
        s.check(
            "No data corruption",
            q.whole() && other == 0,
            format!("after the restart, {line}"),
        );
    }
    Ok(())
}
