//! loadgen against the seed's topology: nginx in front of three nodes on one
//! Redis, every one a real process on loopback (seed Test 7 in CI, at a size
//! this shared machine runs in seconds). Correctness only: every chunk of
//! every answer checked, every message accounted for, every process measured.

mod support;

use clap::Parser;
use cluster::LocalCluster;
use loadgen::monitor::procs::ProcRole as Role;
use loadgen::report::model::Report;
use std::time::Duration;
use support::local::start_cluster;

fn run(args: &[String]) -> Report {
    let opts = loadgen::Opts::try_parse_from(
        ["loadgen", "--quiet"]
            .into_iter()
            .map(String::from)
            .chain(args.iter().cloned()),
    )
    .expect("valid options");
    loadgen::run(opts)
        .expect("the run succeeds")
        .report
        .expect("a report")
}

/// Options as written on a command line.
fn argv(line: &str) -> Vec<String> {
    line.split_whitespace().map(String::from).collect()
}

fn connections_served(c: &LocalCluster, i: usize) -> f64 {
    let (_, body) =
        cluster::http::get(c.node(i).addr(), "/metrics", Duration::from_secs(5)).unwrap();
    body.lines()
        .find(|l| l.starts_with("wsnode_connections_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no wsnode_connections_total from node {i}"))
}

/// Run loadgen with `args` and SIGKILL the node that took the most
/// connections once they are all open; the report, the killed node's index
/// and how many connections it had taken.
fn kill_busiest_node_during(c: &mut LocalCluster, args: Vec<String>) -> (Report, usize, f64) {
    let load = std::thread::spawn(move || run(&args));
    std::thread::sleep(Duration::from_millis(1500));
    let victim = (0..3)
        .max_by(|&a, &b| connections_served(c, a).total_cmp(&connections_served(c, b)))
        .unwrap();
    let had = connections_served(c, victim);
    c.node_mut(victim).kill();
    (load.join().expect("loadgen run"), victim, had)
}

#[test]
fn chat_load_through_nginx_three_nodes_and_redis_loses_nothing() {
    let mut c = start_cluster();
    let redis_port = c.redis().expect("redis").port();
    let mut args = argv(&format!(
        "--url ws://{}/ws/chat --mode chat --conns 36 --rate 2 --duration 3s \
         --chat-chunks 6 --chat-interval-ms 5 --source-ips 127.0.0.2-127.0.0.37 \
         --redis 127.0.0.1:{redis_port}",
        c.nginx().addr()
    ));
    for n in c.nodes() {
        args.extend([
            "--node-pid".to_string(),
            n.pid().expect("running").to_string(),
        ]);
    }
    let r = run(&args);

    let m = &r.messages;
    assert_eq!(r.connections.established, 36, "{:?}", r.connections);
    assert!(m.sent >= 36 * 4, "{m:?}");
    assert_eq!(
        (m.errors_total, m.timeouts, m.lost),
        (0, 0, 0),
        "{m:?} {:?}",
        r.error_samples
    );
    assert_eq!(
        m.ok + m.in_flight,
        m.sent,
        "every answer complete and checked: {m:?}"
    );
    // Every node took connections, and every process was measured.
    for i in 0..3 {
        assert!(connections_served(&c, i) > 0.0, "node {i} served nobody");
    }
    let nodes: Vec<_> = r
        .resources
        .iter()
        .filter(|p| p.role == Role::Node)
        .collect();
    assert_eq!(nodes.len(), 3, "{:?}", r.resources);
    assert!(nodes.iter().all(|n| n.cpu_pct.is_some()), "{nodes:?}");
    // Each node's share of the messages is unknown behind nginx: only the
    // nodes' sum per message is reported.
    assert!(
        nodes.iter().all(|n| n.cpu_us_per_msg.is_none()),
        "{nodes:?}"
    );
    let sum: f64 = nodes.iter().filter_map(|n| n.cpu_pct).sum();
    let together = r.nodes_cpu_us_per_msg.expect("nodes together");
    let expect = sum / 100.0 * 1e6 / m.per_sec;
    assert!(
        (together - expect).abs() <= expect * 1e-9,
        "{together} vs {expect}"
    );
    let redis = r
        .resources
        .iter()
        .find(|p| p.role == Role::Redis)
        .expect("redis measured");
    assert!(
        redis.cpu_pct.is_some() && redis.rss_bytes.unwrap_or(0) > 0,
        "{redis:?}"
    );
    // The answers went through Redis (each chunk list is what LRANGE shows).
    let keys = c
        .redis()
        .unwrap()
        .command(&["KEYS", "stream:chunks:*"])
        .unwrap();
    assert!(keys.starts_with('*') && !keys.starts_with("*0"), "{keys}");
    c.stop();
}

#[test]
fn a_node_killed_mid_run_is_measured_as_failover_time() {
    let mut c = start_cluster();
    let args = argv(&format!(
        "--url ws://{}/ws/chat --conns 30 --rate 5 --duration 4s --reconnect \
         --source-ips 127.0.0.2-127.0.0.31",
        c.nginx().addr()
    ));
    let (r, victim, had) = kill_busiest_node_during(&mut c, args.clone());

    let conns = &r.connections;
    assert!(had >= 1.0 && conns.drops >= 1, "{conns:?}");
    assert_eq!(
        conns.failovers_unfinished, 0,
        "every dropped client got back: {conns:?}"
    );
    assert_eq!(conns.failover_us.count, conns.drops, "{conns:?}");
    assert!(conns.reconnects >= conns.drops, "{conns:?}");
    let row = r
        .grades
        .iter()
        .find(|g| g.key == loadgen::report::grades::MetricKey::FailoverTime)
        .expect("a Failover Time row");
    assert_eq!(row.measured, Some(conns.failover_us.p99 as f64), "{row:?}");
    assert_ne!(
        row.grade,
        loadgen::report::grades::Grade::NotMeasured,
        "{row:?}"
    );
    // Messages in flight on the killed node are lost with their connection;
    // everything else is answered, and the accounting still balances.
    let m = &r.messages;
    assert_eq!(
        m.sent,
        m.received + m.timeouts + m.lost + m.in_flight,
        "{m:?}"
    );
    assert!(m.received > m.sent * 9 / 10, "{m:?}");

    // Seed Test 5, last step: the node restarts and rejoins. Once nginx's
    // fail_timeout (5 s) has passed it takes new connections again.
    c.node_mut(victim)
        .restart()
        .expect("the killed node restarts");
    std::thread::sleep(Duration::from_millis(5500));
    let again = run(&args
        .iter()
        .map(|a| {
            if a == "4s" {
                "2s".to_string()
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>());
    assert_eq!(
        (again.messages.errors_total, again.connections.drops),
        (0, 0),
        "{:?}",
        again.messages
    );
    assert!(
        connections_served(&c, victim) > 0.0,
        "the restarted node took no connection"
    );
    c.stop();
}

#[test]
fn answers_of_a_crashed_node_are_taken_over_and_recovered_whole() {
    let mut c = start_cluster();
    // Answers of ~800 ms, so the crash cuts several mid-stream.
    let args = argv(&format!(
        "--url ws://{}/ws/chat --mode chat --conns 30 --rate 2 --duration 4s \
         --chat-chunks 40 --chat-interval-ms 20 --reconnect --source-ips 127.0.0.2-127.0.0.31",
        c.nginx().addr()
    ));
    let (r, _, _) = kill_busiest_node_during(&mut c, args);

    let chat = r.chat.as_ref().expect("chat figures");
    let m = &r.messages;
    assert!(r.connections.drops >= 1, "{:?}", r.connections);
    // The dead node's answers go on: a survivor takes each over at the
    // client's recover (the crashed node left its presence channel) and
    // continues it from the next chunk; every one is checked whole.
    assert!(chat.recovery_us.count >= 1, "{chat:?}");
    assert_eq!(
        (chat.recoveries_ended, chat.recoveries_unfinished),
        (0, 0),
        "none interrupted, none left waiting: {chat:?}"
    );
    assert_eq!(m.timeouts, 0, "{m:?}");
    // A chat that never reached a node before the crash is lost; nothing
    // that reached one ends in an error.
    assert!(!m.errors.contains_key("server_error"), "{m:?}");
    for kind in ["chunk_order", "chunk_text", "bad_reply"] {
        assert!(!m.errors.contains_key(kind), "{kind}: {m:?}");
    }
    assert_eq!(
        m.sent,
        m.received + m.timeouts + m.lost + m.in_flight,
        "{m:?}"
    );
    let row = r
        .grades
        .iter()
        .find(|g| g.key == loadgen::report::grades::MetricKey::RecoveryTime)
        .expect("a Recovery Time row");
    assert!(row.measured.is_some(), "{row:?}");
    assert!(!row.value.contains("interrupted"), "{row:?}");
    c.stop();
}

fn nodes_of(r: &Report) -> Vec<&loadgen::monitor::procs::ProcReport> {
    r.resources
        .iter()
        .filter(|p| p.role == Role::Node)
        .collect()
}

#[test]
fn every_node_registered_in_redis_is_monitored_and_named_by_its_id() {
    let mut c = start_cluster();
    let redis_port = c.redis().expect("redis").port();
    // Only nginx and Redis are given: the nodes are found in Redis's registry.
    let args = argv(&format!(
        "--url ws://{}/ws/chat --conns 30 --rate 2 --duration 3s \
         --source-ips 127.0.0.2-127.0.0.31 --redis 127.0.0.1:{redis_port}",
        c.nginx().addr()
    ));
    let r = run(&args);

    let nodes = nodes_of(&r);
    let ids: Vec<&str> = nodes.iter().filter_map(|n| n.node_id.as_deref()).collect();
    assert_eq!(ids, ["node1", "node2", "node3"], "{:?}", r.resources);
    for (i, n) in nodes.iter().enumerate() {
        assert_eq!(Some(n.pid), c.node(i).pid(), "{n:?}");
        assert!(n.cpu_pct.is_some(), "{n:?}");
        assert!(n.bytes_per_conn.is_none_or(|b| b >= 0.0), "{n:?}");
    }
    // Each node counts its own connections (not all 30 behind nginx).
    let held: i64 = nodes.iter().map(|n| n.conns_at_sample).sum();
    assert_eq!(held, 30, "{nodes:?}");
    let text = loadgen::report::template::template(&r);
    for i in 1..=3 {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("- Node {i} CPU: ")))
            .unwrap_or_else(|| panic!("no Node {i} row in\n{text}"));
        assert!(
            line.contains(&format!("node{i};")) && !line.contains("n/a"),
            "{line}"
        );
    }
    // Per second too, every node has its own entry (not only the first
    // node), and the HTML report draws a line for each.
    assert!(
        r.series.iter().all(|s| s.nodes.len() == 3),
        "{:?}",
        r.series
    );
    let last = r
        .series
        .iter()
        .rev()
        .find(|s| s.nodes.iter().all(|n| n.rss_bytes.is_some()));
    let last = last.expect("a second with every node's RSS");
    assert!(last.nodes.iter().all(|n| n.cpu_pct.is_some()), "{last:?}");
    assert_eq!(last.node_rss_bytes, last.nodes[0].rss_bytes);
    let html = loadgen::report::html::page(&r);
    for id in ["node1", "node2", "node3"] {
        assert!(
            html.contains(&format!("{id} CPU %")),
            "no CPU line for {id}"
        );
    }
    c.stop();
}

#[test]
fn a_node_killed_mid_run_has_no_memory_figure_and_is_never_graded_target_for_it() {
    let mut c = start_cluster();
    let redis_port = c.redis().expect("redis").port();
    let args = argv(&format!(
        "--url ws://{}/ws/chat --conns 30 --rate 5 --duration 4s --reconnect \
         --source-ips 127.0.0.2-127.0.0.31 --redis 127.0.0.1:{redis_port}",
        c.nginx().addr()
    ));
    let (r, victim, _) = kill_busiest_node_during(&mut c, args);

    let nodes = nodes_of(&r);
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    let id = format!("node{}", victim + 1);
    let dead = nodes
        .iter()
        .find(|n| n.node_id.as_deref() == Some(id.as_str()))
        .expect("the killed node was monitored");
    assert_eq!(dead.bytes_per_conn, None, "{dead:?}");
    assert!(
        dead.memory_note
            .as_deref()
            .is_some_and(|n| n.contains("died")),
        "{dead:?}"
    );
    assert!(dead.died_at_s.is_some(), "{dead:?}");
    assert!(dead.cpu_pct.is_some(), "CPU until its death: {dead:?}");
    // No node's figure is negative, and the memory row never stands on the
    // dead node's: it is named as not counted, or the row is not measured.
    assert!(
        nodes
            .iter()
            .all(|n| n.bytes_per_conn.is_none_or(|b| b >= 0.0)),
        "{nodes:?}"
    );
    let row = r
        .grades
        .iter()
        .find(|g| g.key == loadgen::report::grades::MetricKey::MemoryPerConnection)
        .expect("a memory row");
    assert!(row.measured.is_none_or(|b| b >= 0.0), "{row:?}");
    assert!(row.value.contains(&id), "{row:?}");
    if row.measured.is_none() {
        assert_eq!(
            row.grade,
            loadgen::report::grades::Grade::NotMeasured,
            "{row:?}"
        );
    }
    let text = loadgen::report::template::template(&r);
    assert!(
        text.contains(&format!("{id}; mean")) && text.contains("mean until then"),
        "{text}"
    );
    c.stop();
}
