//! Seed tests 1, 2 and 10: connectivity, sticky sessions, isolation.

use crate::scenario::checks::Sequence;
use crate::scenario::client::{Answer, Client, End, session_url};
use crate::scenario::evidence::{Sheet, Stop};
use crate::scenario::nodes::{NodeTarget, wait_for};
use crate::scenario::setup::Env;
use crate::scenario::store::shown;
use std::time::Duration;

/// Whether an answer arrived whole: done with `chunks`, every index once,
/// in order, every text right. The evidence line says what was seen.
pub fn answer_whole(a: &Answer, chunks: u32) -> (bool, String) {
    let seq = Sequence::of(&a.indices, chunks);
    let ok = a.end == End::Done(chunks) && seq.whole() && a.bad_text == 0;
    (
        ok,
        format!(
            "{}; end {:?}; {} with wrong text",
            seq.describe(a.indices.len()),
            a.end,
            a.bad_text
        ),
    )
}

/// Which nodes logged a line with every needle; `None` if any log is unknown.
pub fn nodes_logging(nodes: &[NodeTarget], needles: &[&str]) -> Option<Vec<(usize, usize)>> {
    let mut hits = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let c = n.log_count(needles)?;
        if c > 0 {
            hits.push((i + 1, c));
        }
    }
    (!nodes.is_empty()).then_some(hits)
}

/// Test 1: a client connects through the balancer, one node logs it, the
/// session is in `sessions:active`, an answer arrives whole; every node
/// takes a connection of its own.
pub async fn connectivity(env: &mut Env, s: &mut Sheet) -> Result<(), Stop> {
    let store = env.store()?;
    let st = env.settings.clone();
    let sid = env.session("connectivity");
    let mut c = Client::connect(&session_url(&env.balancer, &sid, None), st.step).await?;
    let node = c.welcome.node_id.clone();
    s.note(format!(
        "connected through {}: welcome from node {node}",
        env.balancer
    ));

    let needles = ["WebSocket connected", sid.as_str()];
    let mut logged = None;
    wait_for(Duration::from_secs(3), || {
        logged = nodes_logging(&env.nodes, &needles);
        logged.as_ref().is_none_or(|h| !h.is_empty())
    })
    .await;
    match logged {
        Some(hits) => s.check(
            "One node shows \"WebSocket connected\"",
            hits.len() == 1,
            format!("nodes (number, lines) logging it for {sid}: {hits:?}"),
        ),
        None => s.check(
            "One node shows \"WebSocket connected\"",
            !node.is_empty(),
            format!("no node logs (--node-log): judged by the welcome's node_id {node:?}"),
        ),
    };

    let entry = store.session(&sid)?;
    s.check(
        "Session exists in Redis",
        entry
            .as_deref()
            .is_some_and(|e| e.contains(&format!("\"{node}\""))),
        format!("HGET sessions:active {sid} = {}", shown(&entry)),
    );

    let mid = format!("{sid}-m1");
    c.chat(&mid, st.chunks, st.interval_ms);
    let a = c.collect(&mid, st.answer_wait()).await;
    let (ok, line) = answer_whole(&a, st.chunks);
    s.check(
        "Message delivered to client",
        ok,
        format!("answer {mid}: {line}"),
    );

    let mut accepted = Vec::new();
    for (i, n) in env.nodes.iter().enumerate() {
        let url = session_url(&n.ws, &format!("{sid}-direct{}", i + 1), None);
        match Client::connect(&url, st.step).await {
            Ok(d) => accepted.push(format!("node{} ({})", i + 1, d.welcome.node_id)),
            Err(e) => s.note(format!("node{}: {e}", i + 1)),
        }
    }
    if env.nodes.is_empty() {
        s.note("no --node-url: each node's own connection not checked");
    } else {
        s.check(
            "All nodes can receive connections",
            accepted.len() == env.nodes.len(),
            format!("direct connections welcomed by {}", accepted.join(", ")),
        );
    }
    Ok(())
}

/// Test 2: ten messages of one connection through the balancer, all handled
/// by one node, without a disconnect.
pub async fn sticky(env: &mut Env, s: &mut Sheet) -> Result<(), Stop> {
    let st = env.settings.clone();
    let sid = env.session("sticky");
    let mut c = Client::connect(&session_url(&env.balancer, &sid, None), st.step).await?;
    let welcome_node = c.welcome.node_id.clone();
    let mut nodes = Vec::new();
    for id in 1..=10u64 {
        match c.echo(id, st.step).await {
            Ok(n) => nodes.push(n),
            Err(e) => {
                s.note(format!("message {id}: {e}"));
                break;
            }
        }
    }
    nodes.dedup();
    s.check(
        "All messages from same session handled by same node",
        nodes.len() == 1 && nodes[0] == welcome_node,
        format!("welcome from {welcome_node}; the 10 echo replies came from {nodes:?}"),
    );
    let mid = format!("{sid}-m1");
    c.chat(&mid, st.chunks, st.interval_ms);
    let a = c.collect(&mid, st.answer_wait()).await;
    let (whole, line) = answer_whole(&a, st.chunks);
    s.note(format!("an answer on the same connection: {line}"));
    if let Some(hits) = nodes_logging(&env.nodes, &["Received message", sid.as_str()]) {
        s.check(
            "The node logs show one node handling the session",
            hits.len() == 1,
            format!("nodes (number, lines) logging \"Received message\" for {sid}: {hits:?}"),
        );
    }
    let connects = nodes_logging(&env.nodes, &["WebSocket connected", sid.as_str()]);
    let one_connect = connects
        .as_ref()
        .is_none_or(|h| h.iter().map(|x| x.1).sum::<usize>() == 1);
    s.check(
        "No unexpected disconnects",
        whole && one_connect && c.wait_closed(Duration::from_millis(200)).await.is_none(),
        format!(
            "connection still open after 10 messages and an answer; \"WebSocket connected\" lines for {sid}: {}",
            connects.map_or("no logs given".into(), |h| format!("{h:?}"))
        ),
    );
    Ok(())
}

/// Test 10: ten sessions, spread over the nodes, each asks for an answer
/// at once; each gets its own answer whole and nothing of the others'.
pub async fn isolation(env: &mut Env, s: &mut Sheet) -> Result<(), Stop> {
    let st = env.settings.clone();
    let mut clients = Vec::new();
    for i in 0..10 {
        let sid = env.session(&format!("iso{i}"));
        let base = match env.nodes.len() {
            0 => env.balancer.clone(),
            n => env.nodes[i % n].ws.clone(),
        };
        clients.push((
            sid.clone(),
            Client::connect(&session_url(&base, &sid, None), st.step).await?,
        ));
    }
    let nodes: std::collections::BTreeSet<String> = clients
        .iter()
        .map(|(_, c)| c.welcome.node_id.clone())
        .collect();
    s.note(format!("10 sessions on nodes {nodes:?}"));
    for (sid, c) in &clients {
        c.chat(&format!("{sid}-m1"), st.chunks, st.interval_ms);
    }
    if let Some(store) = &env.store {
        let channels = store.stream_channels()?;
        let mine = clients
            .iter()
            .filter(|(sid, _)| channels.contains(&crate::scenario::store::channel(sid)))
            .count();
        s.check(
            "Each session has its own chat:stream:{sessionId} channel",
            mine == clients.len(),
            format!("PUBSUB CHANNELS chat:stream:* lists {mine} of the 10 sessions' channels"),
        );
    }
    let mut complete = 0;
    let mut leaked = 0;
    let mut bad = Vec::new();
    for (sid, c) in &mut clients {
        let mid = format!("{sid}-m1");
        let a = c.collect(&mid, st.answer_wait()).await;
        let (ok, line) = answer_whole(&a, st.chunks);
        // Anything else that arrives shortly after is a leak as well.
        let late = c.collect("(none)", Duration::from_millis(50)).await;
        leaked += a.foreign.len() + late.foreign.len();
        if ok {
            complete += 1;
        } else {
            bad.push(format!("{mid}: {line}"));
        }
    }
    s.check(
        "All 10 streams complete",
        complete == 10,
        format!("{complete} of 10 answers whole {bad:?}"),
    );
    s.check(
        "No cross-contamination",
        leaked == 0,
        format!("{leaked} chunks of another session's answer received"),
    );
    s.check(
        "All chunks delivered to correct clients",
        complete == 10 && leaked == 0,
        "every client got exactly its own answer's chunks",
    );
    Ok(())
}
