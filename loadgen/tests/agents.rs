//! Remote agents on this machine: a controller (in this process, through
//! the library) and three `loadgen agent` processes, coordinated by a real
//! redis-server on a free port, loading the local cluster (nginx, three
//! nodes, their Redis) from distinct source-address ranges.

mod support;

use clap::Parser;
use cluster::RedisServer;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use loadgen::engine::stats::{Counts, Summary, new_hist};
use loadgen::report::model::Report;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::local::start_cluster;

/// `loadgen agent` processes, killed on drop.
struct Agents(Vec<(String, Child)>);

impl Drop for Agents {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start_agents(coordinator: &str, names: &[&str], hlog_dir: Option<&Path>) -> Agents {
    let mut v = Vec::new();
    for name in names {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_loadgen"));
        cmd.args([
            "agent",
            "--coordinator",
            coordinator,
            "--name",
            name,
            "--runs",
            "1",
            "--wait",
            "60s",
            "--threads",
            "1",
        ]);
        if let Some(d) = hlog_dir {
            cmd.arg("--hdr-log").arg(d.join(format!("{name}.hlog")));
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("loadgen agent starts");
        v.push((name.to_string(), child));
    }
    Agents(v)
}

fn controller(args: &str) -> (u8, Report) {
    let opts = loadgen::Opts::try_parse_from(
        ["loadgen", "--quiet"]
            .into_iter()
            .map(String::from)
            .chain(args.split_whitespace().map(String::from)),
    )
    .expect("valid options");
    let out = loadgen::run(opts).expect("the controller's run completes");
    (out.exit_code, out.report.expect("a report"))
}

fn settled(c: &Counts) -> u64 {
    c.received + c.timeouts + c.lost + c.in_flight
}

/// The untagged (corrected) histograms of interval logs, added up, read
/// with the hdrhistogram crate alone.
fn corrected_from_logs(files: &[PathBuf]) -> Histogram<u64> {
    let mut total = new_hist();
    let mut de = Deserializer::new();
    for f in files {
        let data = std::fs::read(f).expect("the agent wrote its log");
        for entry in IntervalLogIterator::new(&data) {
            if let Ok(LogEntry::Interval(h)) = entry
                && h.tag().is_none()
            {
                let bytes = base64_decode(h.encoded_histogram());
                let hist: Histogram<u64> = de.deserialize(&mut &bytes[..]).expect("a histogram");
                total.add(&hist).expect("same bounds");
            }
        }
    }
    total
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64")
}

/// Wait until `agents` agents each have `entries` messages in their run
/// stream (Hello, Ready, then one a second).
fn wait_for_entries(coord: &RedisServer, agents: usize, entries: u64) {
    let mut redis = redis::Client::open(coord.url().as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < until, "the run never got going");
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("loadgen:run:*:from:*")
            .query(&mut redis)
            .unwrap();
        let lens: Vec<u64> = keys
            .iter()
            .map(|k| redis::cmd("XLEN").arg(k).query(&mut redis).unwrap())
            .collect();
        if lens.len() == agents && lens.iter().all(|&n| n >= entries) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn three_agents_through_redis_add_up_to_one_report() {
    let c = start_cluster();
    let coord = RedisServer::start().expect("a coordinator redis-server");
    let dir = tempfile::tempdir().unwrap();
    let names = ["ag-a", "ag-b", "ag-c"];
    let _agents = start_agents(&coord.url(), &names, Some(dir.path()));
    let (code, r) = controller(&format!(
        "--coordinator {} --agents 3 --agents-wait 20s --url ws://{}/ws/chat \
         --conns 30 --rate 5 --duration 3s --source-ips 127.0.0.2-127.0.0.13",
        coord.url(),
        c.nginx().addr()
    ));

    assert_eq!(r.workers, 3);
    assert_eq!(r.agents.len(), 3, "{:?}", r.agents);
    let mut named: Vec<&str> = r.agents.iter().map(|a| a.name.as_str()).collect();
    named.sort();
    assert_eq!(named, names);
    assert!(
        r.agents.iter().all(|a| a.lost_at_s.is_none()),
        "{:?}",
        r.agents
    );
    // Each agent had its own four addresses, and its third of the connections.
    let mut ranges: Vec<&str> = r.agents.iter().map(|a| a.source_ips.as_str()).collect();
    ranges.sort();
    assert_eq!(
        ranges,
        [
            "127.0.0.10-127.0.0.13",
            "127.0.0.2-127.0.0.5",
            "127.0.0.6-127.0.0.9"
        ]
    );
    for a in &r.agents {
        assert_eq!((a.conns, a.counts.conn_ok), (10, 10), "{a:?}");
        assert!(a.clock_rtt_us > 0, "{a:?}");
    }
    // The merged counts are the sum of the agents' counts.
    let mut sum = Counts::default();
    for a in &r.agents {
        sum.add(&a.counts);
    }
    let m = &r.messages;
    assert_eq!(
        (m.sent, m.received, m.ok, m.timeouts, m.lost, m.in_flight),
        (
            sum.sent,
            sum.received,
            sum.ok,
            sum.timeouts,
            sum.lost,
            sum.in_flight
        )
    );
    assert_eq!(r.connections.established, sum.conn_ok);
    assert_eq!(r.connections.established, 30, "{:?}", r.error_samples);
    assert!(m.sent >= 30 * 5 * 2, "{m:?}");
    // The accounting identity holds for the merged run.
    assert_eq!(
        m.sent,
        m.received + m.timeouts + m.lost + m.in_flight,
        "{m:?}"
    );
    assert_eq!(m.sent, settled(&sum));
    // The percentiles are those of the agents' own histograms, merged here
    // independently of loadgen's merge.
    let logs: Vec<PathBuf> = names
        .iter()
        .map(|n| dir.path().join(format!("{n}.hlog")))
        .collect();
    let independent = Summary::of(&corrected_from_logs(&logs));
    let lat = &r.latency_us.corrected;
    assert_eq!(independent.count, m.received);
    assert_eq!(
        (lat.count, lat.p50, lat.p99, lat.p999, lat.max),
        (
            independent.count,
            independent.p50,
            independent.p99,
            independent.p999,
            independent.max
        )
    );
    // The seconds are merged too: they add up to the run's replies.
    let per_second: u64 = r.series.iter().map(|s| s.received).sum();
    assert_eq!(per_second, m.received);
    assert!(code <= 1, "exit {code}");
    // Nothing of the run is left in the coordinator but idle bookkeeping.
    let left = coord.command(&["KEYS", "loadgen:run:*"]).unwrap();
    assert_eq!(left, "*0");
}

#[test]
fn a_killed_agent_is_named_with_its_partial_figures_and_fails_the_run() {
    let c = start_cluster();
    let coord = RedisServer::start().expect("a coordinator redis-server");
    let names = ["k-a", "k-b", "k-c"];
    let mut agents = start_agents(&coord.url(), &names, None);
    let url = coord.url();
    let nginx = c.nginx().addr();
    let run = std::thread::spawn(move || {
        controller(&format!(
            "--coordinator {url} --agents 3 --agents-wait 20s --url ws://{nginx}/ws/chat \
             --conns 30 --rate 5 --duration 8s --source-ips 127.0.0.2-127.0.0.13"
        ))
    });
    // Once every agent has sent two seconds, kill the second agent.
    wait_for_entries(&coord, 3, 4);
    let killed_at = Instant::now();
    let (victim, child) = &mut agents.0[1];
    child.kill().unwrap();
    let victim = victim.clone();
    let (code, r) = run.join().expect("the controller returns");
    assert!(
        killed_at.elapsed() < Duration::from_secs(20),
        "the run waited {:?} after the kill",
        killed_at.elapsed()
    );

    assert_eq!(code, 1, "a lost agent fails the run: {:?}", r.warnings);
    assert_eq!(r.exit_code, 1);
    let lost: Vec<_> = r.agents.iter().filter(|a| a.lost_at_s.is_some()).collect();
    assert_eq!(lost.len(), 1, "{:?}", r.agents);
    let l = lost[0];
    assert_eq!(l.name, victim);
    let at = l.lost_at_s.unwrap();
    assert!(at > 0.5 && at < 8.0, "{l:?}");
    assert!(
        l.lost_why.as_deref().unwrap_or("").contains("heartbeat"),
        "{l:?}"
    );
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("AGENT LOST") && w.contains(&victim)),
        "{:?}",
        r.warnings
    );
    // Its figures up to its death are in the report, and still add up.
    assert!(l.counts.sent > 0 && l.counts.conn_ok == 10, "{l:?}");
    let mut sum = Counts::default();
    for a in &r.agents {
        sum.add(&a.counts);
    }
    let m = &r.messages;
    assert_eq!((m.sent, m.received), (sum.sent, sum.received));
    assert_eq!(
        m.sent,
        m.received + m.timeouts + m.lost + m.in_flight,
        "{m:?}"
    );
    // The others ran to the end.
    for a in r.agents.iter().filter(|a| a.lost_at_s.is_none()) {
        assert!(a.counts.sent > l.counts.sent, "{a:?} vs {l:?}");
    }
}

#[test]
fn too_few_agents_is_exit_3_with_a_clear_message() {
    let srv = support::start(support::Behavior::Echo {
        delay: Duration::ZERO,
    });
    let coord = RedisServer::start().expect("a coordinator redis-server");
    let _one = start_agents(&coord.url(), &["lonely"], None);
    let opts = loadgen::Opts::try_parse_from(
        format!(
            "loadgen --quiet --coordinator {} --agents 2 --agents-wait 3s --url {}",
            coord.url(),
            srv.url()
        )
        .split_whitespace(),
    )
    .unwrap();
    let e = loadgen::run(opts).expect_err("two agents were wanted");
    assert_eq!(e.exit_code(), 3, "{e}");
    let msg = e.to_string();
    assert!(msg.contains("only 1 of 2 agents"), "{msg}");
    assert!(msg.contains("loadgen agent --coordinator"), "{msg}");
}

#[test]
fn agents_stop_when_the_controller_disappears() {
    let srv = support::start(support::Behavior::Echo {
        delay: Duration::ZERO,
    });
    let coord = RedisServer::start().expect("a coordinator redis-server");
    let dir = tempfile::tempdir().unwrap();
    let mut agents = Vec::new();
    for name in ["orphan-a", "orphan-b"] {
        let log = std::fs::File::create(dir.path().join(format!("{name}.log"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
            .args(["agent", "--coordinator", &coord.url(), "--name", name])
            .args(["--runs", "1", "--wait", "60s", "--threads", "1"])
            .stdin(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        agents.push(child);
    }
    let agents = Agents(agents.into_iter().map(|c| (String::new(), c)).collect());
    // The controller as its own process, killed once the run is going.
    let mut ctl = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["--quiet", "--coordinator", &coord.url(), "--agents", "2"])
        .args([
            "--url",
            &srv.url(),
            "--conns",
            "4",
            "--rate",
            "5",
            "--duration",
            "60s",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_entries(&coord, 2, 3);
    ctl.kill().unwrap();
    let _ = ctl.wait();
    let killed = Instant::now();
    // Both agents stop their run (a 60 s one) and exit (--runs 1).
    let mut agents = agents;
    for (_, child) in &mut agents.0 {
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "{status:?}");
                break;
            }
            assert!(
                killed.elapsed() < Duration::from_secs(20),
                "an agent outlived its controller by 20 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    for name in ["orphan-a", "orphan-b"] {
        let log = std::fs::read_to_string(dir.path().join(format!("{name}.log"))).unwrap();
        assert!(log.contains("the controller's heartbeat stopped"), "{log}");
    }
    // The server saw no new message after the agents stopped.
    let seen = srv.received.load(std::sync::atomic::Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        srv.received.load(std::sync::atomic::Ordering::Relaxed),
        seen
    );
}
