//! `wsnode cluster up|down|status|health`: the local cluster from a shell.
//!
//! `up` starts Redis, the nodes and nginx as ordinary processes, records them
//! in a state file and returns while they keep running; `down` stops exactly
//! what was recorded (checking each pid still is that process) and removes
//! the temp dirs; `status` checks each one. `stop NAME` / `start NAME` take
//! one member down and bring it back (the seed's `docker stop` / `docker
//! start` scenarios). `health` is a one-shot `/health` probe for container
//! HEALTHCHECKs, where no curl is installed.
//!
//! Exit codes: 0 success, 1 failure (something did not start, stop, or is
//! unhealthy), 2 bad usage. Errors never panic; they print one message.

use crate::local::{ClusterOptions, LocalCluster, MAX_NODES};
use crate::nginx::Balance;
use crate::ports::PortChoice;
use crate::process::{self, Stopped};
use crate::state::{self, Condition, Member, Role};
use crate::{ClusterError, http};
use clap::{Args, Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// Run a local wsbench cluster (Redis, wsnode nodes, nginx) as plain processes on loopback.
#[derive(Debug, Parser)]
#[command(name = "wsnode cluster", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Start redis-server, the nodes and nginx; return once all are healthy.
    ///
    /// Options after `--` go to every node, e.g. `wsnode cluster up -- --cleanup-interval 5s`.
    Up(UpArgs),
    /// Stop everything `up` started (SIGTERM, then SIGKILL) and remove its temp dirs.
    Down(DownArgs),
    /// Show each process and its health; exit 1 if any is down or unhealthy.
    Status(StatusArgs),
    /// Stop some members (e.g. `node1`, `redis`), like `docker stop`; the rest keeps running.
    Stop(StopArgs),
    /// Start stopped members again on their ports, like `docker start`.
    Start(StartArgs),
    /// Probe a node's /health once; exit 0 on HTTP 200 (for container HEALTHCHECKs).
    Health(HealthArgs),
}

#[derive(Debug, Args)]
struct StateArg {
    /// State file recording what `up` started
    /// [default: $XDG_RUNTIME_DIR/wsbench-cluster/state.json, else /tmp/wsbench-cluster-UID/state.json].
    #[arg(long, env = "WSBENCH_CLUSTER_STATE")]
    state: Option<PathBuf>,
}

impl StateArg {
    fn path(&self) -> PathBuf {
        self.state.clone().unwrap_or_else(state::default_path)
    }
}

#[derive(Debug, Args)]
struct UpArgs {
    #[command(flatten)]
    state: StateArg,

    /// Number of wsnode processes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=MAX_NODES as i64))]
    nodes: u16,

    /// nginx port [default: 8080 when free, otherwise any free port]. A port given here
    /// must be free; 0 means any free port.
    #[arg(long)]
    nginx_port: Option<u16>,

    /// Port of node1; node N listens on this + N - 1 [default: 8081.. when free,
    /// otherwise free ports]; 0 means free ports.
    #[arg(long)]
    node_port: Option<u16>,

    /// redis-server port [default: 6379 when free, otherwise any free port]; 0 means any free port.
    #[arg(long)]
    redis_port: Option<u16>,

    /// How nginx picks a node. ip-hash (the seed's) hashes the first three octets
    /// of the client's IPv4 address, so all 127.0.0.x clients land on one node;
    /// consistent-hash uses the whole address.
    #[arg(long, value_enum, default_value_t = Balance::IpHash)]
    balance: Balance,

    /// Start no redis-server: each node uses its in-memory broker (nodes share nothing).
    #[arg(long)]
    no_redis: bool,

    /// The wsnode executable for the nodes [default: this executable].
    #[arg(long)]
    wsnode: Option<PathBuf>,

    /// The nginx executable [default: nginx on PATH or in /usr/sbin].
    #[arg(long)]
    nginx: Option<PathBuf>,

    /// The redis-server executable [default: redis-server on PATH].
    #[arg(long)]
    redis_server: Option<PathBuf>,

    /// Directory for the processes' temp dirs (logs, configs) [default: the system temp dir].
    #[arg(long)]
    dir: Option<PathBuf>,

    /// How long each process gets to become healthy.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    ready_timeout: Duration,

    /// nginx worker_connections (a proxied client uses two).
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(64..=1_000_000))]
    worker_connections: u32,

    /// Options for every node, after `--`.
    #[arg(last = true, value_name = "NODE_ARGS")]
    node_args: Vec<OsString>,
}

#[derive(Debug, Args)]
struct DownArgs {
    #[command(flatten)]
    state: StateArg,

    /// How long each process gets after SIGTERM before SIGKILL.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
}

#[derive(Debug, Args)]
struct StopArgs {
    #[command(flatten)]
    state: StateArg,

    /// Members to stop: names from `status` (redis, node1.., nginx).
    #[arg(required = true, value_name = "NAME")]
    names: Vec<String>,

    /// SIGKILL at once (a crash) instead of SIGTERM (a graceful shutdown).
    #[arg(long)]
    kill: bool,

    /// How long each gets after SIGTERM before SIGKILL.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
}

#[derive(Debug, Args)]
struct StartArgs {
    #[command(flatten)]
    state: StateArg,

    /// Members to start again: names from `status`.
    #[arg(required = true, value_name = "NAME")]
    names: Vec<String>,

    /// How long each gets to become healthy.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    ready_timeout: Duration,
}

#[derive(Debug, Args)]
struct StatusArgs {
    #[command(flatten)]
    state: StateArg,

    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct HealthArgs {
    /// URL to probe [default: http://127.0.0.1:PORT/health, PORT from WSNODE_LISTEN, else 8080].
    url: Option<String>,

    /// Give up after this long.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    timeout: Duration,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (write e.g. 500ms, 10s, 1m)"))
}

/// Entry point for `wsnode cluster ...`; returns the process exit code.
pub fn main(args: Vec<OsString>) -> i32 {
    let argv = std::iter::once(OsString::from("wsnode cluster")).chain(args);
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let result = match cli.cmd {
        Cmd::Up(a) => up(a),
        Cmd::Down(a) => down(a),
        Cmd::Status(a) => status(a),
        Cmd::Stop(a) => stop(a),
        Cmd::Start(a) => start(a),
        Cmd::Health(a) => health(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wsnode cluster: {e}");
            match e {
                ClusterError::Invalid(_) => 2,
                _ => 1,
            }
        }
    }
}

extern "C" fn on_signal(_: libc::c_int) {
    process::request_cancel();
}

/// While `up` starts things, Ctrl-C (or SIGTERM) must clean up rather than
/// kill us and orphan half a cluster: the handler only sets a flag that
/// every wait checks.
fn catch_interrupts() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only performs an atomic store, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

fn up(a: UpArgs) -> Result<i32, ClusterError> {
    let path = a.state.path();
    let wsnode = match a.wsnode {
        Some(p) => p,
        None => std::env::current_exe().map_err(crate::io_err("find this executable"))?,
    };
    let choose = |given: Option<u16>, preferred: u16| match given {
        Some(0) => PortChoice::Any,
        Some(p) => PortChoice::Fixed(p),
        None => PortChoice::Prefer(preferred),
    };
    let opts = ClusterOptions {
        nodes: usize::from(a.nodes),
        redis: !a.no_redis,
        redis_port: choose(a.redis_port, 6379),
        node_port: choose(a.node_port, 8081),
        nginx_port: choose(a.nginx_port, 8080),
        balance: a.balance,
        node_args: a.node_args,
        base_dir: a.dir,
        ready_timeout: a.ready_timeout,
        worker_connections: a.worker_connections,
        nginx_program: a.nginx,
        redis_program: a.redis_server,
        process_group: true,
        ..ClusterOptions::new(wsnode)
    };
    opts.validate()?;
    if let Some(base) = opts.base_dir.as_ref().filter(|b| !b.is_dir()) {
        return Err(ClusterError::Invalid(format!(
            "--dir {}: no such directory",
            base.display()
        )));
    }
    // A recorded cluster that still runs is the likeliest reason for busy ports: say so first.
    clear_stale_state(&path)?;
    opts.preflight()?;

    catch_interrupts();
    eprintln!(
        "starting {}{} node(s) and nginx...",
        if opts.redis { "redis-server, " } else { "" },
        opts.nodes
    );
    let cluster = LocalCluster::start(opts.clone())?;
    let notes = cluster.notes().to_vec();
    let nginx_port = cluster.nginx().port();
    let st = cluster.detach()?;
    if let Err(e) = state::save(&path, &st) {
        // Without a state file nobody could stop them later: stop them now.
        for m in st.members.iter().rev() {
            process::stop_recorded(&m.process, Duration::from_secs(5));
            let _ = state::remove_member_dir(&m.dir);
        }
        return Err(e);
    }

    println!("wsbench local cluster is up:");
    // Entry point first, then the nodes in order, then Redis.
    let order = [Role::Nginx, Role::Node, Role::Redis];
    let members = order
        .iter()
        .flat_map(|r| st.members.iter().filter(move |m| m.role == *r));
    for m in members {
        println!(
            "  {:<7} {:<24} pid {:<7} log {}",
            m.name,
            m.url,
            m.process.pid,
            m.log.display()
        );
    }
    println!("  WebSocket: ws://127.0.0.1:{nginx_port}/ws/chat?session_id=demo");
    println!("  balance:   {}", opts.balance.name());
    for n in &notes {
        println!("  note: {n}");
    }
    if opts.balance == Balance::IpHash {
        println!(
            "  note: ip-hash sends every 127.0.0.x client to one node; `--balance consistent-hash` spreads clients with different source addresses"
        );
    }
    if !opts.redis {
        println!("  note: --no-redis: the nodes share no sessions or streams");
    }
    println!("  state:     {}", path.display());
    println!("stop it with: wsnode cluster down{}", state_flag(&a.state));
    Ok(0)
}

fn state_flag(s: &StateArg) -> String {
    s.state
        .as_ref()
        .map(|p| format!(" --state {}", p.display()))
        .unwrap_or_default()
}

/// A state file left by a cluster that is gone (machine reboot, processes
/// killed by hand) is removed with its dirs; one with live processes blocks `up`.
fn clear_stale_state(path: &std::path::Path) -> Result<(), ClusterError> {
    let Some(old) = state::load(path)? else {
        return Ok(());
    };
    let alive: Vec<String> = old
        .members
        .iter()
        .filter(|m| m.process.is_running())
        .map(|m| format!("{} (pid {})", m.name, m.process.pid))
        .collect();
    if !alive.is_empty() {
        return Err(ClusterError::Invalid(format!(
            "a cluster recorded in {} is still running: {}; run `wsnode cluster down` first, or use another --state",
            path.display(),
            alive.join(", ")
        )));
    }
    for m in &old.members {
        let _ = state::remove_member_dir(&m.dir);
    }
    state::remove(path)?;
    eprintln!("note: removed a stale state file {}", path.display());
    Ok(())
}

fn down(a: DownArgs) -> Result<i32, ClusterError> {
    let path = a.state.path();
    let Some(st) = state::load(&path)? else {
        println!(
            "no local cluster recorded in {}: nothing to stop",
            path.display()
        );
        return Ok(0);
    };
    let timeout = a.timeout;
    let mut failed = false;
    // nginx first (no new clients), then the nodes together, then Redis.
    for role in [Role::Nginx, Role::Node, Role::Redis] {
        let group: Vec<&Member> = st.members.iter().filter(|m| m.role == role).collect();
        let results: Vec<(&Member, Stopped, Option<String>)> = std::thread::scope(|s| {
            let handles: Vec<_> = group
                .iter()
                .map(|m| {
                    s.spawn(move || {
                        let other = (!m.process.is_running())
                            .then(|| process::ProcessId::of(m.process.pid))
                            .flatten()
                            .map(|p| p.command());
                        (*m, process::stop_recorded(&m.process, timeout), other)
                    })
                })
                .collect();
            handles
                .into_iter()
                .zip(&group)
                .map(|(h, m)| {
                    h.join()
                        .unwrap_or((*m, Stopped::Stuck, Some("stop thread panicked".into())))
                })
                .collect()
        });
        for (m, how, other) in results {
            let pid = m.process.pid;
            match (how, other) {
                (Stopped::AlreadyGone, Some(cmd)) => println!(
                    "{}: pid {pid} now belongs to another process ({cmd}); left alone",
                    m.name
                ),
                (Stopped::AlreadyGone, None) => println!("{}: was not running", m.name),
                (Stopped::Terminated, _) => println!("{}: stopped (pid {pid})", m.name),
                (Stopped::Killed, _) => println!(
                    "{}: killed (pid {pid} ignored SIGTERM for {})",
                    m.name,
                    humantime::format_duration(timeout)
                ),
                (Stopped::Stuck, _) => {
                    eprintln!("{}: pid {pid} is still running after SIGKILL", m.name);
                    failed = true;
                }
            }
        }
    }
    if failed {
        eprintln!(
            "wsnode cluster: not everything stopped; {} kept so `down` can be run again",
            path.display()
        );
        return Ok(1);
    }
    for m in &st.members {
        if let Err(e) = state::remove_member_dir(&m.dir) {
            eprintln!("{}: {e}", m.name);
        }
    }
    state::remove(&path)?;
    println!("local cluster stopped");
    Ok(0)
}

/// The recorded state, or an error saying there is none.
fn recorded(s: &StateArg) -> Result<(PathBuf, state::ClusterState), ClusterError> {
    let path = s.path();
    match state::load(&path)? {
        Some(st) => Ok((path, st)),
        None => Err(ClusterError::Invalid(format!(
            "no local cluster recorded in {}: start one with `wsnode cluster up`",
            path.display()
        ))),
    }
}

/// Indexes of the named members; an unknown name is an error listing the known ones.
fn select(st: &state::ClusterState, names: &[String]) -> Result<Vec<usize>, ClusterError> {
    names
        .iter()
        .map(|n| {
            st.members.iter().position(|m| &m.name == n).ok_or_else(|| {
                let known: Vec<&str> = st.members.iter().map(|m| m.name.as_str()).collect();
                ClusterError::Invalid(format!("no member {n:?}; members: {}", known.join(", ")))
            })
        })
        .collect()
}

fn stop(a: StopArgs) -> Result<i32, ClusterError> {
    let (_, st) = recorded(&a.state)?;
    let mut failed = false;
    for i in select(&st, &a.names)? {
        let m = &st.members[i];
        let how = if a.kill {
            if m.process.is_running() {
                process::sigkill(m.process.pid);
                if process::wait_until(Duration::from_secs(5), || !m.process.is_running()) {
                    Stopped::Killed
                } else {
                    Stopped::Stuck
                }
            } else {
                Stopped::AlreadyGone
            }
        } else {
            process::stop_recorded(&m.process, a.timeout)
        };
        match how {
            Stopped::AlreadyGone => println!("{}: was not running", m.name),
            Stopped::Terminated => println!("{}: stopped (pid {})", m.name, m.process.pid),
            Stopped::Killed => println!("{}: killed (pid {})", m.name, m.process.pid),
            Stopped::Stuck => {
                eprintln!("{}: pid {} is still running", m.name, m.process.pid);
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

fn start(a: StartArgs) -> Result<i32, ClusterError> {
    let (path, mut st) = recorded(&a.state)?;
    let picked = select(&st, &a.names)?;
    catch_interrupts();
    let mut result = Ok(0);
    for i in picked {
        let m = &mut st.members[i];
        match m.start(a.ready_timeout) {
            Ok(()) => println!("{}: started (pid {}) {}", m.name, m.process.pid, m.url),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    // Record whatever did start, even if a later one failed.
    state::save(&path, &st)?;
    result
}

fn status(a: StatusArgs) -> Result<i32, ClusterError> {
    let path = a.state.path();
    let Some(st) = state::load(&path)? else {
        if a.json {
            println!("{}", serde_json::json!({ "running": false, "members": [] }));
        } else {
            println!("no local cluster recorded in {}", path.display());
        }
        return Ok(1);
    };
    let conditions: Vec<Condition> = std::thread::scope(|s| {
        let handles: Vec<_> = st
            .members
            .iter()
            .map(|m| s.spawn(move || m.condition()))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or(Condition::Unhealthy("check panicked".into()))
            })
            .collect()
    });
    let all_ok = conditions.iter().all(|c| *c == Condition::Healthy);
    if a.json {
        let members: Vec<serde_json::Value> = st
            .members
            .iter()
            .zip(&conditions)
            .map(|(m, c)| {
                let (state, detail) = describe(c);
                serde_json::json!({
                    "name": m.name, "role": m.role, "pid": m.process.pid, "port": m.port,
                    "url": m.url, "log": m.log, "state": state, "detail": detail,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({ "running": all_ok, "state_file": path, "balance": st.balance, "members": members })
        );
    } else {
        println!(
            "{:<7} {:<8} {:<10} {:<24} DETAIL",
            "NAME", "PID", "STATE", "URL"
        );
        for (m, c) in st.members.iter().zip(&conditions) {
            let (state, detail) = describe(c);
            println!(
                "{:<7} {:<8} {:<10} {:<24} {detail}",
                m.name, m.process.pid, state, m.url
            );
        }
        println!("balance {}; state {}", st.balance, path.display());
    }
    Ok(if all_ok { 0 } else { 1 })
}

fn describe(c: &Condition) -> (&'static str, String) {
    match c {
        Condition::Healthy => ("healthy", String::new()),
        Condition::Unhealthy(d) => ("unhealthy", d.clone()),
        Condition::Down => ("down", "not running".into()),
        Condition::Replaced(cmd) => ("down", format!("pid reused by: {cmd}")),
    }
}

fn health(a: HealthArgs) -> Result<i32, ClusterError> {
    let url = match a.url {
        Some(u) => u,
        None => {
            let listen = std::env::var("WSNODE_LISTEN").unwrap_or_else(|_| "0.0.0.0:8080".into());
            let addr = http::probe_addr(&listen).ok_or_else(|| {
                ClusterError::Invalid(format!("WSNODE_LISTEN={listen} is not host:port"))
            })?;
            format!("http://{addr}/health")
        }
    };
    let (addr, path) = http::parse_url(&url).ok_or_else(|| {
        ClusterError::Invalid(format!(
            "{url}: expected http://IP:PORT/PATH or http://localhost:PORT/PATH"
        ))
    })?;
    match http::get(addr, &path, a.timeout) {
        Ok((200, body)) => {
            println!("{url}: 200 {}", body.trim());
            Ok(0)
        }
        Ok((code, body)) => {
            eprintln!("{url}: HTTP {code} {}", body.trim());
            Ok(1)
        }
        Err(e) => {
            eprintln!("{url}: {e}");
            Ok(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> i32 {
        main(args.iter().map(OsString::from).collect())
    }

    #[test]
    fn usage_errors_exit_2_and_help_exits_0() {
        assert_eq!(run(&[]), 2);
        assert_eq!(run(&["sideways"]), 2);
        assert_eq!(run(&["up", "--nodes", "0"]), 2);
        assert_eq!(run(&["up", "--nodes", "99"]), 2);
        assert_eq!(run(&["up", "--ready-timeout", "soon"]), 2);
        assert_eq!(run(&["up", "--balance", "random"]), 2);
        assert_eq!(run(&["--help"]), 0);
        assert_eq!(run(&["up", "--help"]), 0);
    }

    #[test]
    fn node_args_that_the_cluster_sets_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let st = tmp.path().join("s.json");
        let st = st.to_str().unwrap();
        assert_eq!(run(&["up", "--state", st, "--", "--node-id", "x"]), 2);
        assert_eq!(run(&["up", "--state", st, "--", "--redis=redis://x"]), 2);
        assert_eq!(run(&["up", "--state", st, "--dir", "/nonexistent/dir"]), 2);
    }

    #[test]
    fn down_and_status_without_a_cluster() {
        let tmp = tempfile::tempdir().unwrap();
        let st = tmp.path().join("none.json");
        let st = st.to_str().unwrap();
        assert_eq!(run(&["down", "--state", st]), 0, "nothing to stop is fine");
        assert_eq!(run(&["status", "--state", st]), 1, "nothing runs");
        assert_eq!(run(&["status", "--json", "--state", st]), 1);
    }

    #[test]
    fn stop_and_start_need_a_cluster_and_known_names() {
        let tmp = tempfile::tempdir().unwrap();
        let st = tmp.path().join("none.json");
        let st = st.to_str().unwrap();
        assert_eq!(run(&["stop", "--state", st, "node1"]), 2);
        assert_eq!(run(&["start", "--state", st, "node1"]), 2);
        assert_eq!(run(&["stop", "--state", st]), 2, "a name is required");
    }

    #[test]
    fn health_probe() {
        assert_eq!(run(&["health", "ftp://x"]), 2);
        // Nothing listens on a port we just released.
        let port = crate::ports::free_port().unwrap();
        let url = format!("http://127.0.0.1:{port}/health");
        assert_eq!(run(&["health", &url, "--timeout", "1s"]), 1);
    }
}
