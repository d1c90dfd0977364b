//! The local cluster from outside: `wscluster up|status|down` as a user
//! runs them (the built binaries, real redis-server and nginx), and the
//! `cluster` library as the harness of the cluster tests (a WebSocket through
//! nginx to a node and back, failover when that node is killed).
//!
//! Every test works in its own temp dir with free ports. The dir is also the
//! processes' working directory, so "nothing left behind" is checked by
//! looking for live processes whose cwd is inside it; a guard runs
//! `wscluster down` even when an assertion fails.

mod common;

use cluster::process::{ProcessId, processes_in};
use cluster::state_file::{self, ClusterState};
use cluster::{Balance, ClusterOptions, LocalCluster};
use common::wsnode;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;
use tokio_tungstenite::tungstenite::{self, Message, stream::MaybeTlsStream};

const WSCLUSTER: &str = env!("CARGO_BIN_EXE_wscluster");

/// How long one expected frame may take before the test fails.
const WAIT: Duration = Duration::from_secs(15);

/// `wscluster ARGS`, with this run's wsnode named explicitly.
fn wscluster(args: &[&str]) -> Output {
    Command::new(WSCLUSTER)
        .args(args)
        .env("WSBENCH_WSNODE", wsnode())
        .output()
        .expect("run wscluster")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A fresh directory, removed on drop (std only: no dev-dependency needed).
struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("{prefix}{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A temp dir for one test's cluster, torn down (`cluster down`, then a
/// SIGKILL for anything still running in it) when the test ends, pass or fail.
struct Sandbox {
    dir: TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        Sandbox {
            dir: TempDir::new("cluster-cli-"),
        }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn state(&self) -> PathBuf {
        self.path().join("state.json")
    }
    fn state_str(&self) -> String {
        self.state().to_string_lossy().into_owned()
    }
    fn dir_str(&self) -> String {
        self.path().to_string_lossy().into_owned()
    }
    /// `cluster up` on free ports in this sandbox, plus `extra`.
    fn up(&self, extra: &[&str]) -> Output {
        let (st, dir) = (self.state_str(), self.dir_str());
        let mut args = vec![
            "up",
            "--state",
            &st,
            "--dir",
            &dir,
            "--nginx-port",
            "0",
            "--node-port",
            "0",
            "--redis-port",
            "0",
            "--worker-connections",
            "1024",
        ];
        args.extend_from_slice(extra);
        wscluster(&args)
    }
    fn leftovers(&self) -> Vec<String> {
        processes_in(self.path())
            .iter()
            .map(|p| format!("{} {}", p.pid, p.command()))
            .collect()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if self.state().exists() {
            let st = self.state_str();
            let _ = wscluster(&["down", "--state", &st, "--timeout", "5s"]);
        }
        for p in processes_in(self.path()) {
            cluster::process::sigkill(p.pid);
        }
    }
}

fn gone(id: &ProcessId) -> bool {
    // Gone, or a zombie nobody reaped (PID 1 here may not reap), or a new process.
    !id.is_running()
}

#[test]
fn up_status_down_leaves_no_process_behind() {
    let sb = Sandbox::new();
    let st = sb.state_str();

    let up = sb.up(&[
        "--balance",
        "consistent-hash",
        "--",
        "--cleanup-interval",
        "5s",
    ]);
    assert!(up.status.success(), "up failed: {}", text(&up));
    let out = String::from_utf8_lossy(&up.stdout);
    for needle in [
        "nginx",
        "node1",
        "node2",
        "node3",
        "redis",
        "ws://127.0.0.1:",
        "wscluster down",
    ] {
        assert!(
            out.contains(needle),
            "{needle} missing from up's output: {}",
            text(&up)
        );
    }

    let recorded: ClusterState = state_file::load(&sb.state())
        .unwrap()
        .expect("state file written");
    assert_eq!(recorded.members.len(), 5, "{recorded:?}");
    assert_eq!(recorded.balance, "consistent-hash");
    for m in &recorded.members {
        assert!(m.process.is_running(), "{} not running after up", m.name);
        assert!(m.dir.starts_with(sb.path()), "{} dir outside --dir", m.name);
        assert!(m.log.exists(), "{} has no log {}", m.name, m.log.display());
    }
    let node1 = recorded.members.iter().find(|m| m.name == "node1").unwrap();
    assert!(
        node1
            .process
            .cmdline
            .iter()
            .any(|a| a == "--cleanup-interval"),
        "options after -- reach the nodes: {:?}",
        node1.process.cmdline
    );
    assert!(
        node1.process.cmdline.iter().any(|a| a == "--redis"),
        "nodes join Redis: {:?}",
        node1.process.cmdline
    );
    let nginx = recorded.members.iter().find(|m| m.name == "nginx").unwrap();
    let (code, body) = cluster::http::get(nginx.addr(), "/health", Duration::from_secs(5)).unwrap();
    assert_eq!(code, 200, "/health through nginx: {body}");

    let status = wscluster(&["status", "--state", &st]);
    assert!(status.status.success(), "status: {}", text(&status));
    assert_eq!(
        String::from_utf8_lossy(&status.stdout)
            .matches("healthy")
            .count(),
        5,
        "{}",
        text(&status)
    );

    // A second `up` on the same state refuses, and starts nothing.
    let again = sb.up(&[]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(text(&again).contains("still running"), "{}", text(&again));

    // A node that crashes makes status fail and name it.
    let node2 = recorded.members.iter().find(|m| m.name == "node2").unwrap();
    let kill = wscluster(&["stop", "--kill", "--state", &st, "node2"]);
    assert!(kill.status.success(), "stop --kill: {}", text(&kill));
    assert!(gone(&node2.process), "node2 killed");
    let status = wscluster(&["status", "--state", &st, "--json"]);
    assert_eq!(status.status.code(), Some(1), "{}", text(&status));
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let n2 = &json["members"].as_array().unwrap()[2];
    assert_eq!(
        (n2["name"].as_str(), n2["state"].as_str()),
        (Some("node2"), Some("down")),
        "{json}"
    );

    // `start` brings it back on its port (the seed's `docker start`), with its log kept.
    let start = wscluster(&["start", "--state", &st, "node2"]);
    assert!(start.status.success(), "start: {}", text(&start));
    let status = wscluster(&["status", "--state", &st]);
    assert!(
        status.status.success(),
        "all healthy again: {}",
        text(&status)
    );
    let restarted = state_file::load(&sb.state()).unwrap().unwrap();
    let new2 = restarted
        .members
        .iter()
        .find(|m| m.name == "node2")
        .unwrap();
    assert_ne!(new2.process, node2.process, "a new process");
    assert_eq!(
        new2.process.cmdline, node2.process.cmdline,
        "same command line"
    );
    let log = std::fs::read_to_string(&new2.log).unwrap();
    assert_eq!(
        log.matches("listening").count(),
        2,
        "both runs in one log:\n{log}"
    );
    let again = wscluster(&["start", "--state", &st, "node2"]);
    assert_eq!(
        again.status.code(),
        Some(2),
        "already running: {}",
        text(&again)
    );

    // A graceful stop of Redis (the seed's `docker stop demo-redis-multi`).
    let stop = wscluster(&["stop", "--state", &st, "redis"]);
    assert!(stop.status.success(), "stop: {}", text(&stop));
    let status = wscluster(&["status", "--state", &st]);
    assert_eq!(status.status.code(), Some(1), "{}", text(&status));
    let bad = wscluster(&["stop", "--state", &st, "node9"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(
        text(&bad).contains("members: redis, node1"),
        "{}",
        text(&bad)
    );

    let down = wscluster(&["down", "--state", &st]);
    assert!(down.status.success(), "down: {}", text(&down));
    for m in restarted.members.iter().chain(&recorded.members) {
        assert!(
            gone(&m.process),
            "{} (pid {}) still running",
            m.name,
            m.process.pid
        );
        assert!(
            !m.dir.exists(),
            "{} dir {} not removed",
            m.name,
            m.dir.display()
        );
    }
    assert!(!sb.state().exists(), "state file removed");
    assert!(
        sb.leftovers().is_empty(),
        "left behind: {:?}",
        sb.leftovers()
    );

    // Down again: nothing to do, still success.
    let again = wscluster(&["down", "--state", &st]);
    assert!(again.status.success(), "{}", text(&again));
}

#[test]
fn a_node_that_cannot_start_fails_cleanly() {
    let sb = Sandbox::new();
    let up = sb.up(&["--", "--no-such-option"]);
    assert_eq!(up.status.code(), Some(1), "{}", text(&up));
    let err = String::from_utf8_lossy(&up.stderr);
    assert!(err.contains("node1"), "names the node: {}", text(&up));
    assert!(
        err.contains("no-such-option"),
        "shows the node's own error: {}",
        text(&up)
    );
    assert!(!sb.state().exists(), "no state for a failed start");
    // redis-server was started before the node failed: it must be gone too.
    assert!(
        cluster::process::wait_until(Duration::from_secs(5), || sb.leftovers().is_empty()),
        "left behind: {:?}",
        sb.leftovers()
    );
    let leftover_dirs: Vec<_> = std::fs::read_dir(sb.path()).unwrap().flatten().collect();
    assert!(
        leftover_dirs.is_empty(),
        "temp dirs left: {leftover_dirs:?}"
    );
}

#[test]
fn busy_port_and_missing_nginx_are_clear_errors() {
    let sb = Sandbox::new();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let (st, dir) = (sb.state_str(), sb.dir_str());

    let up = wscluster(&[
        "up",
        "--state",
        &st,
        "--dir",
        &dir,
        "--node-port",
        "0",
        "--redis-port",
        "0",
        "--nginx-port",
        &port,
    ]);
    assert_eq!(up.status.code(), Some(1), "{}", text(&up));
    assert!(
        text(&up).contains(&format!("port {port} for nginx is busy")),
        "{}",
        text(&up)
    );

    let up = sb.up(&["--nginx", "/nonexistent/nginx"]);
    assert_eq!(up.status.code(), Some(1), "{}", text(&up));
    assert!(
        text(&up).contains("nginx not found at /nonexistent/nginx"),
        "{}",
        text(&up)
    );

    let up = sb.up(&["--nodes", "0"]);
    assert_eq!(up.status.code(), Some(2), "{}", text(&up));

    assert!(!sb.state().exists());
    assert!(
        sb.leftovers().is_empty(),
        "left behind: {:?}",
        sb.leftovers()
    );
}

#[test]
fn wscluster_finds_wsnode_next_to_itself_or_says_where_it_looked() {
    let sb = Sandbox::new();
    let bin = sb.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    // A copy, not a symlink: the executable's own dir is where it looks.
    let copy = bin.join("wscluster");
    std::fs::copy(WSCLUSTER, &copy).unwrap();
    let (st, dir) = (sb.state_str(), sb.dir_str());
    let up = || {
        Command::new(&copy)
            .args(["up", "--state", &st, "--dir", &dir])
            .args(["--nginx", "/nonexistent/nginx", "--nodes", "1"])
            .env_remove("WSBENCH_WSNODE")
            .output()
            .unwrap()
    };
    let missing = up();
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing));
    let expected = format!("wsnode not found at {}", bin.join("wsnode").display());
    assert!(text(&missing).contains(&expected), "{}", text(&missing));
    assert!(text(&missing).contains("--wsnode"), "{}", text(&missing));

    // With a wsnode beside it, `up` gets past the program checks to the
    // next one (nginx), and starts nothing.
    std::os::unix::fs::symlink(wsnode(), bin.join("wsnode")).unwrap();
    let found = up();
    assert_eq!(found.status.code(), Some(1), "{}", text(&found));
    assert!(
        text(&found).contains("nginx not found at /nonexistent/nginx"),
        "{}",
        text(&found)
    );
    let named = wscluster(&["up", "--state", &st, "--wsnode", "/nonexistent/wsnode"]);
    assert_eq!(named.status.code(), Some(1), "{}", text(&named));
    assert!(
        text(&named).contains("wsnode not found at /nonexistent/wsnode: check the path"),
        "{}",
        text(&named)
    );
    assert!(!sb.state().exists());
}

type Ws = tungstenite::WebSocket<MaybeTlsStream<std::net::TcpStream>>;

fn connect(url: &str) -> Ws {
    let (mut ws, resp) = tungstenite::connect(url).unwrap_or_else(|e| panic!("connect {url}: {e}"));
    assert_eq!(resp.status().as_u16(), 101);
    if let MaybeTlsStream::Plain(s) = ws.get_mut() {
        s.set_read_timeout(Some(WAIT)).unwrap();
    }
    ws
}

/// The next JSON text frame (pings are answered by tungstenite itself).
fn next_json(ws: &mut Ws) -> serde_json::Value {
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => return serde_json::from_str(&t).expect("JSON frame"),
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            other => panic!("expected a text frame within {WAIT:?}, got {other:?}"),
        }
    }
}

#[test]
fn websocket_through_nginx_and_failover_to_another_node() {
    let base = TempDir::new("cluster-lib-");
    let mut opts = ClusterOptions::new(wsnode());
    opts.balance = Balance::ConsistentHash;
    opts.worker_connections = 1024;
    opts.base_dir = Some(base.path().to_path_buf());
    let mut c = LocalCluster::start(opts).expect("local cluster starts");

    // Upgrade through nginx: the welcome comes from one of the nodes.
    let mut ws = connect(&c.ws_url("session_id=through-nginx"));
    let welcome = next_json(&mut ws);
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(welcome["session_id"], "through-nginx");
    let first = welcome["node_id"].as_str().expect("node_id").to_string();
    let idx = c
        .nodes()
        .iter()
        .position(|n| n.node_id() == first)
        .unwrap_or_else(|| panic!("welcome from unknown node {first}"));
    c.node(idx)
        .wait_for_log("WebSocket connected", WAIT)
        .expect("the chosen node logs the connection");

    // Seed Test 1: the session is visible in Redis (`HGET sessions:active ID`).
    let redis = c.redis().expect("the cluster runs Redis");
    let mut reply = String::new();
    let registered = cluster::process::wait_until(WAIT, || {
        reply = redis
            .command(&["HGET", "sessions:active", "through-nginx"])
            .unwrap_or_default();
        reply.starts_with('$') && reply != "$-1"
    });
    assert!(registered, "session not in sessions:active: {reply:?}");

    // A streamed answer comes back through nginx, in order.
    ws.send(Message::text(
        r#"{"type":"chat","text":"hi","message_id":"m-1","chunks":3,"interval_ms":5}"#,
    ))
    .unwrap();
    let mut got = Vec::new();
    loop {
        let m = next_json(&mut ws);
        match m["type"].as_str() {
            Some("ack") => {}
            Some("chunk") => got.push(m["index"].as_u64().unwrap()),
            Some("done") => break,
            _ => panic!("unexpected frame {m}"),
        }
    }
    assert_eq!(got, [0, 1, 2]);
    let _ = ws.close(None);

    // The node crashes: nginx sends the next client to another node.
    let killed_port = c.node(idx).port();
    c.node_mut(idx).kill();
    let mut ws = connect(&c.ws_url("session_id=after-crash"));
    let welcome = next_json(&mut ws);
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_ne!(
        welcome["node_id"].as_str(),
        Some(first.as_str()),
        "a dead node cannot answer"
    );
    let _ = ws.close(None);

    // It comes back on the same port and answers again.
    c.node_mut(idx).restart().expect("restart");
    assert_eq!(c.node(idx).port(), killed_port);
    assert!(c.node(idx).is_healthy());
    assert!(
        c.node(idx).log_count("listening") >= 2,
        "the log spans both runs"
    );

    let pids = c.pids();
    assert!(
        pids.len() >= 6,
        "redis, 3 nodes, nginx master and worker: {pids:?}"
    );
    drop(c);
    for pid in pids {
        assert!(
            cluster::process::wait_until(Duration::from_secs(5), || ProcessId::of(pid).is_none()),
            "pid {pid} survived the cluster's drop"
        );
    }
    assert!(processes_in(base.path()).is_empty());
}

#[test]
fn the_deploy_nginx_conf_proxies_websockets_to_real_nodes() {
    // nginx-lb.conf as docker compose would run it, with the compose host
    // names pointed at three local nodes sharing one Redis.
    let base = TempDir::new("cluster-deploy-");
    let redis = cluster::RedisServer::builder()
        .base_dir(base.path())
        .start()
        .expect("redis-server");
    let nodes: Vec<cluster::NodeProcess> = (1..=3)
        .map(|i| {
            cluster::NodeProcess::builder(wsnode())
                .node_id(format!("node{i}"))
                .redis(redis.url())
                .base_dir(base.path())
                .start()
                .expect("node starts")
        })
        .collect();
    // The Dockerfile's HEALTHCHECK: `wsnode health`, port from WSNODE_LISTEN;
    // and `wscluster health URL`, the same probe from the cluster tool.
    let probe = |listen: &str| {
        Command::new(wsnode())
            .arg("health")
            .env("WSNODE_LISTEN", listen)
            .output()
            .unwrap()
    };
    let ok = probe(&format!("0.0.0.0:{}", nodes[0].port()));
    assert!(ok.status.success(), "{}", text(&ok));
    let dead = cluster::ports::free_port().unwrap();
    let down = probe(&format!("0.0.0.0:{dead}"));
    assert_eq!(down.status.code(), Some(1), "{}", text(&down));
    let ok = wscluster(&["health", &format!("{}/health", nodes[1].url())]);
    assert!(ok.status.success(), "{}", text(&ok));

    let conf_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../nginx-lb.conf");
    let conf = std::fs::read_to_string(&conf_path).unwrap();
    let hosts: Vec<(String, std::net::SocketAddr)> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (format!("node{}:{}", i + 1, 8081 + i), n.addr()))
        .collect();
    let pairs: Vec<(&str, std::net::SocketAddr)> =
        hosts.iter().map(|(h, a)| (h.as_str(), *a)).collect();
    let local = cluster::nginx::localize_deploy_conf(&conf, &pairs);
    for (h, _) in &hosts {
        assert!(!local.contains(h.as_str()), "{h} not replaced:\n{local}");
    }
    let nginx = cluster::NginxServer::builder()
        .config_text(local)
        .base_dir(base.path())
        .start()
        .expect("nginx runs nginx-lb.conf");

    let (code, body) = nginx.get("/health").unwrap();
    assert_eq!(code, 200, "/health passes through: {body}");
    assert!(body.contains("\"node_id\":\"node"), "{body}");

    let mut ws = connect(&nginx.ws_url("session_id=deploy-conf"));
    let welcome = next_json(&mut ws);
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    let id = welcome["node_id"].as_str().unwrap().to_string();
    let node = nodes
        .iter()
        .find(|n| n.node_id() == id)
        .expect("a known node");
    node.wait_for_log("WebSocket connected", WAIT).unwrap();
    ws.send(Message::text(r#"{"type":"echo","id":7,"ts":1}"#))
        .unwrap();
    let echo = next_json(&mut ws);
    assert_eq!(
        (echo["type"].as_str(), echo["id"].as_u64()),
        (Some("echo"), Some(7)),
        "{echo}"
    );
    let _ = ws.close(None);
}
