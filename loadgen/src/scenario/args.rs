//! `loadgen scenario` options, exactly as typed (checked in `setup`).

use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

/// One of the seed's ten scenarios, or all of them in the seed's order.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Name {
    /// Test 1: a client connects through the balancer, its session is in
    /// Redis, a message is answered.
    Connectivity,
    /// Test 2: ten messages of one connection are all handled by one node.
    Sticky,
    /// Test 3: three tabs of one session on three nodes all get the answer.
    Broadcast,
    /// Test 4: a client cut mid-answer reconnects and recovers the rest.
    Recovery,
    /// Test 5: a node is stopped; its client reconnects elsewhere; it rejoins.
    Failover,
    /// Test 6: Redis is stopped and started; errors, then recovery.
    RedisFailure,
    /// Test 7: many connections at a steady rate (loadgen's engine).
    Load,
    /// Test 8: one session written from three nodes; chunk order in Redis.
    Ordering,
    /// Test 9: a silent client is detected and its session cleaned up.
    Cleanup,
    /// Test 10: ten sessions stream at once without cross-talk.
    Isolation,
    /// Chat load with --reconnect through the balancer while a chaos
    /// schedule (--chaos) kills nodes, restarts Redis and reloads the
    /// balancer: every answer accounted for, no chunk lost, duplicated or
    /// reordered, RSS and file descriptors back where they were.
    Soak,
    /// The ten scenarios above, in this order, then a soak.
    All,
}

impl Name {
    /// The ten scenarios in the seed's order.
    pub const EVERY: [Name; 10] = [
        Name::Connectivity,
        Name::Sticky,
        Name::Broadcast,
        Name::Recovery,
        Name::Failover,
        Name::RedisFailure,
        Name::Load,
        Name::Ordering,
        Name::Cleanup,
        Name::Isolation,
    ];

    /// The name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Name::Connectivity => "connectivity",
            Name::Sticky => "sticky",
            Name::Broadcast => "broadcast",
            Name::Recovery => "recovery",
            Name::Failover => "failover",
            Name::RedisFailure => "redis-failure",
            Name::Load => "load",
            Name::Ordering => "ordering",
            Name::Cleanup => "cleanup",
            Name::Isolation => "isolation",
            Name::Soak => "soak",
            Name::All => "all",
        }
    }
}

/// Where the scenarios run.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterKind {
    /// Start redis-server, three nodes and nginx on loopback, stop them after.
    Local,
    /// An existing deployment: --url, --node-url, --redis and fault commands.
    External,
}

#[derive(Args, Debug, Clone)]
#[command(after_help = "\
Examples:
  loadgen scenario all                                   # local cluster, a few minutes
  loadgen scenario recovery ordering --json out.json
  loadgen scenario all --cluster external --url ws://127.0.0.1:8080/ws/chat \\
      --node-url http://127.0.0.1:8081 --node-url http://127.0.0.1:8082 \\
      --node-url http://127.0.0.1:8083 --redis redis://127.0.0.1:6379 \\
      --stop-node-cmd 'docker stop demo-java-websocket-{n}' \\
      --start-node-cmd 'docker start demo-java-websocket-{n}' \\
      --stop-redis-cmd 'docker stop demo-redis-multi' \\
      --start-redis-cmd 'docker start demo-redis-multi'

Exit codes: 0 every scenario that ran passed (SKIPPED ones did not run);
1 a scenario failed; 2 bad options; 3 the local cluster could not start.")]
pub struct ScenarioOpts {
    /// Scenarios to run, in the seed's order whatever the order given.
    /// Example: loadgen scenario connectivity sticky
    #[arg(required = true, value_enum)]
    pub names: Vec<Name>,

    /// `local` (default without --url) starts a cluster on loopback;
    /// `external` (default with --url) tests the deployment given.
    #[arg(long, value_enum)]
    pub cluster: Option<ClusterKind>,

    /// External: the balancer's WebSocket URL. Example: --url ws://127.0.0.1:8080/ws/chat
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,

    /// External: one node's base URL (repeat, in node order: node 1 first).
    /// Example: --node-url http://127.0.0.1:8081
    #[arg(long = "node-url", value_name = "URL")]
    pub node_urls: Vec<String>,

    /// External: the Redis the nodes share. Example: --redis redis://127.0.0.1:6379
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,

    /// External: node n's log file, read for the seed's log lines (repeat,
    /// in node order). Example: --node-log /var/log/node1.log
    #[arg(long = "node-log", value_name = "FILE")]
    pub node_logs: Vec<PathBuf>,

    /// External: shell command that stops node {n} (1-based).
    /// Example: --stop-node-cmd 'docker stop demo-java-websocket-{n}'
    #[arg(long, value_name = "CMD")]
    pub stop_node_cmd: Option<String>,

    /// External: shell command that starts node {n} again.
    /// Example: --start-node-cmd 'docker start demo-java-websocket-{n}'
    #[arg(long, value_name = "CMD")]
    pub start_node_cmd: Option<String>,

    /// External: shell command that stops Redis. Example: --stop-redis-cmd 'docker stop demo-redis-multi'
    #[arg(long, value_name = "CMD")]
    pub stop_redis_cmd: Option<String>,

    /// External: shell command that starts Redis again.
    /// Example: --start-redis-cmd 'docker start demo-redis-multi'
    #[arg(long, value_name = "CMD")]
    pub start_redis_cmd: Option<String>,

    /// Local: the program the nodes run, a wsnode or a loadgen (run as
    /// `loadgen __node`, which writes no logs) [default: $WSBENCH_WSNODE,
    /// else the wsnode beside this loadgen, else this loadgen].
    /// Example: --node-program target/release/wsnode
    #[arg(long, value_name = "PATH")]
    pub node_program: Option<PathBuf>,

    /// Local: one more option for every node (repeat), after the shortened
    /// intervals. Example: --node-arg=--chunk-size --node-arg=32
    #[arg(long = "node-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub node_args: Vec<String>,

    /// Local: `failover` kills node 1 with SIGKILL, a crash, instead of
    /// SIGTERM (what `docker stop` sends). Against a deployment the
    /// --stop-node-cmd decides (e.g. `docker kill`).
    #[arg(long)]
    pub crash: bool,

    /// Chunks per answer the scenarios ask for (50 or more exposes a node
    /// that loses one chunk in fifty). Example: --chunks 100
    #[arg(long, default_value_t = 60)]
    pub chunks: u32,

    /// Milliseconds between chunks of those answers. Example: --chunk-interval-ms 20
    #[arg(long, default_value_t = 10)]
    pub chunk_interval_ms: u64,

    /// Longest wait for any one expected frame or state. Example: --step-timeout 20s
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub step_timeout: Duration,

    /// How long a stale session may take to leave `sessions:active` after
    /// its client went silent [default: 15s local (the nodes run with short
    /// intervals), 90s external (the seed's 30 s heartbeat + 60 s cleanup)].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub cleanup_within: Option<Duration>,

    /// Load: connections [default: 100 local, the seed's 1000 external].
    #[arg(long)]
    pub load_conns: Option<u32>,

    /// Load: messages per second per connection (the seed's 10).
    #[arg(long, default_value_t = 10.0)]
    pub load_rate: f64,

    /// Load: how long [default: 5s local, the seed's 5m external].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub load_duration: Option<Duration>,

    /// External: shell command that reloads the balancer's configuration
    /// (soak's reload-balancer). Example: --reload-balancer-cmd 'docker exec demo-nginx nginx -s reload'
    #[arg(long, value_name = "CMD")]
    pub reload_balancer_cmd: Option<String>,

    /// Soak: chat connections through the balancer, with --reconnect
    /// [default: 60 local, 1000 external].
    #[arg(long)]
    pub soak_conns: Option<u32>,

    /// Soak: chat messages per second per connection. Example: --soak-rate 0.5
    #[arg(long, default_value_t = 1.0)]
    pub soak_rate: f64,

    /// Soak: how long [default: 20s local, 10m external].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub soak_duration: Option<Duration>,

    /// Soak: calm after the chaos, load still running: in its second half
    /// every answer must complete and nothing may fail [default: 8s local,
    /// 60s external].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub soak_calm: Option<Duration>,

    /// Soak: the faults, separated by ';': `kill-node|stop-node every DUR[,
    /// restart after DUR]`, `restart-redis at TIME[, down DUR]`,
    /// `reload-balancer at TIME` (TIME: 90s or 50%). Nodes are taken in
    /// turn [default: 'kill-node every 30s, restart after 5s; restart-redis
    /// at 50%; reload-balancer at 75%', with every 6s and 2s locally].
    #[arg(long, value_name = "SCHEDULE")]
    pub chaos: Option<String>,

    /// Write every scenario's status, criteria and evidence as JSON. Example: --json scenarios.json
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Print only the summary tables, not each scenario's evidence.
    #[arg(long)]
    pub quiet: bool,
}
