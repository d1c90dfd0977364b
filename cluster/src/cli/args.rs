//! `wscluster`'s command line: what each subcommand accepts, as clap parses it.

use crate::local::MAX_NODES;
use crate::nginx::Balance;
use crate::state_file;
use clap::{Args, Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// Run a local wsbench cluster (Redis, wsnode nodes, nginx) as plain processes on loopback.
#[derive(Debug, Parser)]
#[command(name = "wscluster", version)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Start redis-server, the nodes and nginx; return once all are healthy.
    ///
    /// Options after `--` go to every node, e.g. `wscluster up -- --cleanup-interval 5s`.
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
pub struct StateArg {
    /// State file recording what `up` started
    /// [default: $XDG_RUNTIME_DIR/wsbench-cluster/state.json, else /tmp/wsbench-cluster-UID/state.json].
    #[arg(long, env = "WSBENCH_CLUSTER_STATE")]
    pub state: Option<PathBuf>,
}

impl StateArg {
    pub fn path(&self) -> PathBuf {
        self.state.clone().unwrap_or_else(state_file::default_path)
    }
}

#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub state: StateArg,

    /// Number of wsnode processes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=MAX_NODES as i64))]
    pub nodes: u16,

    /// nginx port [default: 8080 when free, otherwise any free port]. A port given here
    /// must be free; 0 means any free port.
    #[arg(long)]
    pub nginx_port: Option<u16>,

    /// Port of node1; node N listens on this + N - 1 [default: 8081.. when free,
    /// otherwise free ports]; 0 means free ports.
    #[arg(long)]
    pub node_port: Option<u16>,

    /// redis-server port [default: 6379 when free, otherwise any free port]; 0 means any free port.
    #[arg(long)]
    pub redis_port: Option<u16>,

    /// How nginx picks a node. ip-hash (the seed's) hashes the first three octets
    /// of the client's IPv4 address, so all 127.0.0.x clients land on one node;
    /// consistent-hash uses the whole address.
    #[arg(long, value_enum, default_value_t = Balance::IpHash)]
    pub balance: Balance,

    /// Start no redis-server: each node uses its in-memory broker (nodes share nothing).
    #[arg(long)]
    pub no_redis: bool,

    /// The wsnode executable for the nodes [default: `wsnode` next to this executable,
    /// where cargo builds both].
    #[arg(long, env = "WSBENCH_WSNODE", value_name = "PATH")]
    pub wsnode: Option<PathBuf>,

    /// The nginx executable [default: nginx on PATH or in /usr/sbin].
    #[arg(long)]
    pub nginx: Option<PathBuf>,

    /// The redis-server executable [default: redis-server on PATH].
    #[arg(long)]
    pub redis_server: Option<PathBuf>,

    /// Directory for the processes' temp dirs (logs, configs) [default: the system temp dir].
    #[arg(long)]
    pub dir: Option<PathBuf>,

    /// How long each process gets to become healthy.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub ready_timeout: Duration,

    /// nginx worker_connections (a proxied client uses two).
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(64..=1_000_000))]
    pub worker_connections: u32,

    /// Options for every node, after `--`.
    #[arg(last = true, value_name = "NODE_ARGS")]
    pub node_args: Vec<OsString>,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    #[command(flatten)]
    pub state: StateArg,

    /// How long each process gets after SIGTERM before SIGKILL.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    #[command(flatten)]
    pub state: StateArg,

    /// Members to stop: names from `status` (redis, node1.., nginx).
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,

    /// SIGKILL at once (a crash) instead of SIGTERM (a graceful shutdown).
    #[arg(long)]
    pub kill: bool,

    /// How long each gets after SIGTERM before SIGKILL.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub state: StateArg,

    /// Members to start again: names from `status`.
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,

    /// How long each gets to become healthy.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub ready_timeout: Duration,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub state: StateArg,

    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// URL to probe [default: http://127.0.0.1:PORT/health, PORT from WSNODE_LISTEN, else 8080].
    pub url: Option<String>,

    /// Give up after this long.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub timeout: Duration,
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (write e.g. 500ms, 10s, 1m)"))
}
