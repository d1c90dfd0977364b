//! Where the scenarios run: a local cluster started for them (and stopped
//! when [`Env`] is dropped: every process handle stops its process), or an
//! existing deployment named by URLs, with the user's fault commands.

use crate::config::error::ConfigError;
use crate::error::Error;
use crate::scenario::args::{ClusterKind, ScenarioOpts};
use crate::scenario::chaos::{Event, schedule};
use crate::scenario::evidence::Stop;
use crate::scenario::faults::{Commands, Control};
use crate::scenario::nodes::NodeTarget;
use crate::scenario::store::Store;
use cluster::{ClusterOptions, LocalCluster, NodeProgram};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The local nodes' intervals, shortened so `scenario all` takes minutes:
/// pings every second, a silent client dropped after 3 s, cleanup every
/// second, a session forgotten 3 s after its last connection, a quick
/// shutdown. (The seed's deployment: 15 s, 30 s, 60 s, 30 s.)
const LOCAL_NODE_ARGS: [&str; 12] = [
    "--ping-interval",
    "1s",
    "--idle-timeout",
    "3s",
    "--cleanup-interval",
    "1s",
    "--session-ttl",
    "3s",
    "--node-ttl",
    "3s",
    "--shutdown-timeout",
    "1s",
];

/// How the scenarios are paced, from the options and the kind of set-up.
#[derive(Debug, Clone)]
pub struct Settings {
    pub local: bool,
    /// `failover` kills instead of stopping (local only).
    pub crash: bool,
    pub chunks: u32,
    pub interval_ms: u64,
    /// Longest wait for one expected frame or state.
    pub step: Duration,
    pub cleanup_within: Duration,
    pub load_conns: u32,
    pub load_rate: f64,
    pub load_duration: Duration,
    pub soak_conns: u32,
    pub soak_rate: f64,
    pub soak_duration: Duration,
    /// Load after the chaos, to show the system serving normally again.
    pub soak_calm: Duration,
    /// The chaos schedule as given, and its timeline.
    pub chaos_spec: String,
    pub chaos: Vec<Event>,
}

impl Settings {
    /// Time for a whole answer to stream, plus a step.
    pub fn answer_wait(&self) -> Duration {
        Duration::from_millis(self.interval_ms * u64::from(self.chunks)) + self.step
    }
}

pub struct Env {
    /// The balancer's WebSocket URL (`ws://HOST:PORT/ws/chat`).
    pub balancer: String,
    pub nodes: Vec<NodeTarget>,
    pub store: Option<Store>,
    pub control: Control,
    pub settings: Settings,
    /// Makes session and message ids unique to this run.
    pub run_id: String,
    /// One line saying what is under test.
    pub description: String,
}

impl Env {
    /// A session id unique to this run.
    pub fn session(&self, what: &str) -> String {
        format!("scn-{}-{what}", self.run_id)
    }

    /// The Redis store, or SKIP: the scenario's criteria need it.
    pub fn store(&self) -> Result<&Store, Stop> {
        self.store
            .as_ref()
            .ok_or_else(|| Stop::Skip("--redis not given: Redis cannot be checked".into()))
    }

    /// At least `n` node URLs, or SKIP.
    pub fn need_nodes(&self, n: usize) -> Result<(), Stop> {
        if self.nodes.len() >= n {
            Ok(())
        } else {
            Err(Stop::Skip(format!(
                "needs {n} nodes' URLs (--node-url), {} given",
                self.nodes.len()
            )))
        }
    }
}

/// Check the options and start (or describe) the set-up.
pub fn prepare(opts: &ScenarioOpts) -> Result<Env, Error> {
    let kind = match (opts.cluster, &opts.url) {
        (Some(ClusterKind::Local), Some(_)) => {
            return Err(ConfigError(
                "--url names a deployment: use --cluster external (or drop --url to start a local cluster)"
                    .into(),
            )
            .into());
        }
        (Some(k), _) => k,
        (None, Some(_)) => ClusterKind::External,
        (None, None) => ClusterKind::Local,
    };
    if opts.chunks == 0 || opts.chunks > 1000 {
        return Err(ConfigError("--chunks must be 1..=1000".into()).into());
    }
    let local = kind == ClusterKind::Local;
    let soak_duration = opts.soak_duration.unwrap_or(if local {
        Duration::from_secs(20)
    } else {
        Duration::from_secs(600)
    });
    if soak_duration < Duration::from_secs(2) || soak_duration > Duration::from_secs(7 * 24 * 3600)
    {
        return Err(ConfigError("--soak-duration must be 2s to 7 days".into()).into());
    }
    if !(opts.soak_rate > 0.0 && opts.soak_rate <= 100.0) {
        return Err(
            ConfigError("--soak-rate must be above 0 and at most 100 per second".into()).into(),
        );
    }
    let soak_calm = opts.soak_calm.unwrap_or(if local {
        Duration::from_secs(8)
    } else {
        Duration::from_secs(60)
    });
    if soak_calm < Duration::from_secs(2) || soak_calm > Duration::from_secs(3600) {
        return Err(ConfigError("--soak-calm must be 2s to 1h".into()).into());
    }
    let soak_conns = opts.soak_conns.unwrap_or(if local { 60 } else { 1000 });
    if soak_conns == 0 || soak_conns > 100_000 {
        return Err(ConfigError("--soak-conns must be 1 to 100000".into()).into());
    }
    let chaos_spec = opts.chaos.clone().unwrap_or_else(|| {
        if local {
            "kill-node every 6s, restart after 2s; restart-redis at 50%; reload-balancer at 75%"
        } else {
            "kill-node every 30s, restart after 5s; restart-redis at 50%; reload-balancer at 75%"
        }
        .to_string()
    });
    let node_count = if local {
        3
    } else {
        opts.node_urls.len().max(3)
    };
    let chaos = schedule(&chaos_spec, soak_duration, node_count).map_err(ConfigError)?;
    let settings = Settings {
        local,
        crash: opts.crash,
        chunks: opts.chunks,
        interval_ms: opts.chunk_interval_ms,
        step: opts.step_timeout,
        cleanup_within: opts.cleanup_within.unwrap_or(if local {
            Duration::from_secs(15)
        } else {
            Duration::from_secs(90)
        }),
        load_conns: opts.load_conns.unwrap_or(if local { 100 } else { 1000 }),
        load_rate: opts.load_rate,
        load_duration: opts.load_duration.unwrap_or(if local {
            Duration::from_secs(5)
        } else {
            Duration::from_secs(300)
        }),
        soak_conns,
        soak_rate: opts.soak_rate,
        soak_duration,
        soak_calm,
        chaos_spec,
        chaos,
    };
    let run_id = format!(
        "{:x}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64 & 0xff_ffff_ffff)
    );
    if local {
        local_env(opts, settings, run_id)
    } else {
        external_env(opts, settings, run_id)
    }
}

fn external_env(opts: &ScenarioOpts, settings: Settings, run_id: String) -> Result<Env, Error> {
    let Some(url) = opts.url.clone() else {
        return Err(ConfigError(
            "--cluster external needs --url (the balancer's ws:// URL)".into(),
        )
        .into());
    };
    if !url.starts_with("ws://") {
        return Err(ConfigError(format!("--url {url}: expected ws://HOST:PORT/ws/chat")).into());
    }
    for (flag, given) in [
        ("--crash", opts.crash),
        ("--node-program", opts.node_program.is_some()),
        ("--node-arg", !opts.node_args.is_empty()),
    ] {
        if given {
            return Err(ConfigError(format!(
                "{flag} is for the local cluster; a deployment runs its own nodes (its --stop-node-cmd decides how one stops)"
            ))
            .into());
        }
    }
    if opts.node_logs.len() > opts.node_urls.len() {
        return Err(
            ConfigError("more --node-log than --node-url: give them in node order".into()).into(),
        );
    }
    let nodes = opts
        .node_urls
        .iter()
        .enumerate()
        .map(|(i, u)| NodeTarget::from_url(u, opts.node_logs.get(i).cloned()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ConfigError)?;
    let store = opts
        .redis
        .as_deref()
        .map(Store::open)
        .transpose()
        .map_err(ConfigError)?;
    let description = format!(
        "deployment behind {url}: {} node URL(s), Redis {}",
        nodes.len(),
        opts.redis.as_deref().unwrap_or("not given")
    );
    Ok(Env {
        balancer: url,
        nodes,
        store,
        control: Control::External(Commands {
            stop_node: opts.stop_node_cmd.clone(),
            start_node: opts.start_node_cmd.clone(),
            stop_redis: opts.stop_redis_cmd.clone(),
            start_redis: opts.start_redis_cmd.clone(),
            reload_balancer: opts.reload_balancer_cmd.clone(),
        }),
        settings,
        run_id,
        description,
    })
}

fn local_env(opts: &ScenarioOpts, settings: Settings, run_id: String) -> Result<Env, Error> {
    for (flag, given) in [
        ("--node-url", !opts.node_urls.is_empty()),
        ("--redis", opts.redis.is_some()),
        ("--node-log", !opts.node_logs.is_empty()),
        ("--stop-node-cmd", opts.stop_node_cmd.is_some()),
        ("--start-node-cmd", opts.start_node_cmd.is_some()),
        ("--stop-redis-cmd", opts.stop_redis_cmd.is_some()),
        ("--start-redis-cmd", opts.start_redis_cmd.is_some()),
        ("--reload-balancer-cmd", opts.reload_balancer_cmd.is_some()),
    ] {
        if given {
            return Err(ConfigError(format!(
                "{flag} is for a deployment: add --cluster external and --url"
            ))
            .into());
        }
    }
    let (program, logs) = node_program(opts)?;
    let program_line = program.path.display().to_string();
    let mut copts = ClusterOptions::new(program);
    copts.node_args = LOCAL_NODE_ARGS
        .iter()
        .map(|s| s.into())
        .chain(opts.node_args.iter().map(|s| s.into()))
        .collect();
    copts.ready_timeout = Duration::from_secs(30);
    // Sticky by the whole client address: from one machine, the seed's
    // ip_hash (first three octets) sends every client to one node, and the
    // soak spreads its clients over loopback source addresses.
    copts.balance = cluster::Balance::ConsistentHash;
    copts.worker_connections = 4096;
    let c = LocalCluster::start(copts)
        .map_err(|e| Error::Unreachable(format!("starting the local cluster: {e}")))?;
    let nodes = c
        .nodes()
        .iter()
        .map(|n| NodeTarget {
            http: n.url(),
            ws: n.ws_url(""),
            log: logs.then(|| n.log_path()),
        })
        .collect();
    let redis_url = c.redis().map(|r| r.url()).unwrap_or_default();
    let store = Store::open(&redis_url).map_err(|e| Error::Unreachable(e.to_string()))?;
    let description = format!(
        "local cluster: nginx {} (hash $remote_addr consistent) -> {} nodes ({program_line}{}) -> redis-server {redis_url}; node options {}",
        c.url(),
        c.nodes().len(),
        if logs {
            ""
        } else {
            " __node: no logs, build wsnode for the log checks"
        },
        LOCAL_NODE_ARGS.join(" ")
    );
    Ok(Env {
        balancer: c.ws_url(""),
        nodes,
        store: Some(store),
        control: Control::Local(Box::new(c)),
        settings,
        run_id,
        description,
    })
}

/// The program the local nodes run, and whether it writes the logs the
/// seed greps: `--node-program`, else `WSBENCH_WSNODE`, else a `wsnode`
/// beside this executable (where cargo builds it), else this loadgen as
/// `loadgen __node` (the same node, embedded, but without logs).
fn node_program(opts: &ScenarioOpts) -> Result<(NodeProgram, bool), Error> {
    let exe = std::env::current_exe().map_err(|e| Error::io("finding this executable", e))?;
    let beside = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|d| d.join("wsnode"))
        .find(|p| p.is_file());
    let path = opts
        .node_program
        .clone()
        .or_else(|| std::env::var_os("WSBENCH_WSNODE").map(Into::into))
        .or(beside)
        .unwrap_or(exe);
    let is_loadgen = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("loadgen"));
    let program = NodeProgram::new(&path);
    Ok(if is_loadgen {
        (program.arg("__node"), false)
    } else {
        (program, true)
    })
}
