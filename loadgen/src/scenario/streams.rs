//! Seed tests 3, 4 and 8: one session's answers across nodes (broadcast),
//! recovery after a cut, and chunk order under concurrent writers.

use crate::report::grades::{Thresholds, grade};
use crate::scenario::basics::{answer_whole, nodes_logging};
use crate::scenario::checks::{Sequence, short_list};
use crate::scenario::client::{Client, End, session_url};
use crate::scenario::evidence::{Sheet, Stop, Timing};
use crate::scenario::setup::Env;
use crate::scenario::store::shown;
use tokio::time::Instant;

/// Grade `ms` on the seed's Target Metrics row named `metric`.
pub fn timing(metric: &str, ms: f64) -> Timing {
    let table = Thresholds::seed();
    let g = table
        .rows
        .iter()
        .find(|r| r.name.eq_ignore_ascii_case(metric))
        .map_or("not graded", |r| grade(r, Some(ms * 1000.0)).label());
    Timing {
        metric: metric.to_string(),
        value_ms: ms,
        grade: g.to_string(),
    }
}

/// Three tabs of one session, one on each of the first three nodes (the
/// first creates the session, the others present its token).
async fn tabs(env: &Env, sid: &str) -> Result<Vec<Client>, Stop> {
    env.need_nodes(2)?;
    let step = env.settings.step;
    let first = Client::connect(&session_url(&env.nodes[0].ws, sid, None), step).await?;
    let token = first.welcome.token.clone();
    let mut all = vec![first];
    for n in env.nodes.iter().skip(1).take(2) {
        all.push(Client::connect(&session_url(&n.ws, sid, Some(&token)), step).await?);
    }
    Ok(all)
}

/// Test 3: tabs on different nodes; one asks; all get the answer, through
/// the session's Pub/Sub channel that every one of their nodes listens to.
pub async fn broadcast(env: &mut Env, s: &mut Sheet) -> Result<(), Stop> {
    let st = env.settings.clone();
    let sid = env.session("broadcast");
    let mut tabs = tabs(env, &sid).await?;
    let nodes: Vec<String> = tabs.iter().map(|t| t.welcome.node_id.clone()).collect();
    s.note(format!(
        "{} tabs of session {sid} on nodes {nodes:?}",
        tabs.len()
    ));
    let subs = env.store()?.subscribers(&sid)?;
    s.check(
        "All nodes receive PubSub message",
        subs as usize >= tabs.len(),
        format!("PUBSUB NUMSUB chat:stream:{sid} = {subs} (one subscription per node with a tab)"),
    );
    let mid = format!("{sid}-m1");
    tabs[0].chat(&mid, st.chunks, st.interval_ms);
    let mut lines = Vec::new();
    let mut whole = 0;
    for (i, t) in tabs.iter_mut().enumerate() {
        let (ok, line) = answer_whole(&t.collect(&mid, st.answer_wait()).await, st.chunks);
        whole += usize::from(ok);
        lines.push(format!("tab {} ({}): {line}", i + 1, t.welcome.node_id));
    }
    s.check(
        "All clients receive message regardless of node",
        whole == tabs.len(),
        lines.join("; "),
    );
    Ok(())
}

/// Test 4: a client is cut mid-answer, reconnects with its token and
/// recovers from its last chunk: no gap, no duplicate; Redis held the session
/// and every chunk.
pub async fn recovery(env: &mut Env, s: &mut Sheet) -> Result<(), Stop> {
    let st = env.settings.clone();
    let store = env.store()?;
    let sid = env.session("recovery");
    let mid = format!("{sid}-m1");
    let mut c = Client::connect(&session_url(&env.balancer, &sid, None), st.step).await?;
    let token = c.welcome.token.clone();
    s.note(format!(
        "connected through the balancer to node {}",
        c.welcome.node_id
    ));
    c.chat(&mid, st.chunks, st.interval_ms);
    let cut_after = (st.chunks / 3).max(1);
    let first = c.collect_until(&mid, st.answer_wait(), cut_after).await;
    drop(c); // no close frame: the TCP connection just ends
    let last = first.indices.last().copied();
    s.note(format!(
        "cut after {} chunks (last index {last:?}), without a close frame",
        first.indices.len()
    ));
    let entry = store.session(&sid)?;
    s.check(
        "Session persists in Redis",
        entry.is_some(),
        format!(
            "after the cut: HGET sessions:active {sid} = {}",
            shown(&entry)
        ),
    );

    let started = Instant::now();
    let mut r = Client::connect(&session_url(&env.balancer, &sid, Some(&token)), st.step).await?;
    r.recover(&mid, last.map(i64::from));
    let rest = r.collect(&mid, st.answer_wait()).await;
    let moved = rest.first_chunk.unwrap_or_else(Instant::now);
    let recovery_ms = moved.duration_since(started).as_secs_f64() * 1000.0;
    let mut all = first.indices.clone();
    all.extend(&rest.indices);
    let seq = Sequence::of(&all, st.chunks);
    s.check(
        "Recovery successful",
        rest.end == End::Done(st.chunks) && seq.missing.is_empty() && rest.bad_text == 0,
        format!(
            "reconnected to node {} and recovered from index {:?}: {} more chunks, end {:?}; together {}",
            r.welcome.node_id,
            last.map_or(0, |l| l + 1),
            rest.indices.len(),
            rest.end,
            seq.describe(all.len())
        ),
    );
    s.check(
        "No duplicate chunks",
        seq.duplicates.is_empty() && seq.in_order,
        format!(
            "duplicated {}, {}",
            short_list(&seq.duplicates),
            if seq.in_order {
                "in order"
            } else {
                "out of order"
            }
        ),
    );
    let (cseq, other, line) = store.cached_sequence(&mid, st.chunks)?;
    s.check("Chunks cached correctly", cseq.whole() && other == 0, line);
    if let Some(hits) = nodes_logging(&env.nodes, &["Recovery requested", mid.as_str()]) {
        s.note(format!(
            "\"Recovery requested\" for {mid} logged by nodes (number, lines) {hits:?}"
        ));
    }
    s.timings.push(timing("Recovery Time", recovery_ms));
    s.note(format!(
        "Recovery Time {recovery_ms:.0} ms (reconnect + recover until the answer moved again)"
    ));
    Ok(())
}

/// Test 8: three tabs on three nodes each ask for an answer at once, so
/// three nodes write the session's answers concurrently; every tab sees
/// every answer in order, and Redis holds each one gap- and duplicate-free.
pub async fn ordering(env: &mut Env, s: &mut Sheet) -> Result<(), Stop> {
    let st = env.settings.clone();
    let sid = env.session("ordering");
    let mut tabs = tabs(env, &sid).await?;
    let store = env.store()?;
    let mids: Vec<String> = (1..=tabs.len()).map(|i| format!("{sid}-m{i}")).collect();
    for (t, mid) in tabs.iter().zip(&mids) {
        t.chat(mid, st.chunks, st.interval_ms);
    }
    let ids: Vec<&str> = mids.iter().map(String::as_str).collect();
    let mut client_ok = true;
    let mut lines = Vec::new();
    for (i, t) in tabs.iter_mut().enumerate() {
        let answers = t.gather(&ids, st.answer_wait() * 2, u32::MAX).await;
        for (a, mid) in answers.iter().zip(&mids) {
            let (ok, line) = answer_whole(a, st.chunks);
            client_ok &= ok;
            if !ok {
                lines.push(format!("tab {} {mid}: {line}", i + 1));
            }
        }
    }
    s.check(
        "Clients receive chunks in order",
        client_ok,
        if lines.is_empty() {
            format!(
                "{} tabs each received all {} answers whole and in order",
                tabs.len(),
                mids.len()
            )
        } else {
            lines.join("; ")
        },
    );
    let (mut in_order, mut no_dup, mut no_gap) = (true, true, true);
    let mut cache_lines = Vec::new();
    for mid in &mids {
        let (q, _, line) = store.cached_sequence(mid, st.chunks)?;
        in_order &= q.in_order;
        no_dup &= q.duplicates.is_empty();
        no_gap &= q.missing.is_empty();
        cache_lines.push(line);
    }
    let evidence = cache_lines.join("; ");
    s.check("Chunks in sequential order", in_order, evidence.clone());
    s.check("No duplicate indices", no_dup, evidence.clone());
    s.check("No missing chunks", no_gap, evidence);
    let mut lock_lines = Vec::new();
    let mut locks_ok = true;
    for mid in &mids {
        let acquired = nodes_logging(&env.nodes, &["Stream lease acquired", mid.as_str()]);
        let released = nodes_logging(&env.nodes, &["Stream lease released", mid.as_str()]);
        let (Some(a), Some(r)) = (acquired, released) else {
            lock_lines.clear();
            break;
        };
        let total = |h: &[(usize, usize)]| h.iter().map(|x| x.1).sum::<usize>();
        locks_ok &=
            total(&a) == 1 && total(&r) == 1 && a.first().map(|x| x.0) == r.first().map(|x| x.0);
        lock_lines.push(format!("{mid}: acquired {a:?}, released {r:?}"));
    }
    if lock_lines.is_empty() {
        s.note("no node logs (--node-log): lease logs not checked");
    } else {
        s.check(
            "Lock acquisition logs show proper ordering",
            locks_ok,
            format!(
                "\"Stream lease acquired/released\" (node, lines): {}",
                lock_lines.join("; ")
            ),
        );
    }
    Ok(())
}
