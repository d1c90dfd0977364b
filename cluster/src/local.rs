//! The seed's topology as local processes: Redis, N wsnode nodes, nginx.
//!
//! Started in dependency order (Redis, then the nodes that connect to it,
//! then nginx in front of them), each waited on until healthy. If any step
//! fails, the handles already created are dropped, which stops them: a
//! half-started cluster never stays behind.

use crate::error::ClusterError;
use crate::nginx::{Balance, NginxServer};
use crate::node::{NodeProcess, NodeProgram};
use crate::ports::PortChoice;
use crate::process;
use crate::process::ProcessId;
use crate::programs::{check_program, given_or_found};
use crate::redis_server::RedisServer;
use crate::state_file::{ClusterState, Member, Role};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// Most nodes a local cluster runs (a 2-core machine gains nothing beyond).
pub const MAX_NODES: usize = 16;

/// What to start; [`ClusterOptions::new`] gives test-friendly defaults
/// (free ports everywhere), `wscluster up` prefers the seed's ports.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The program the nodes run: the wsnode executable, perhaps with leading arguments.
    pub node_program: NodeProgram,
    /// Number of nodes [default: 3].
    pub nodes: usize,
    /// Start redis-server and pass `--redis` to the nodes [default: true].
    /// Without it each node uses its in-memory broker and shares nothing.
    pub redis: bool,
    /// [default: any free port].
    pub redis_port: PortChoice,
    /// Port of node1; node i uses this plus i-1 [default: any free port].
    pub node_port: PortChoice,
    /// [default: any free port].
    pub nginx_port: PortChoice,
    /// [default: ip_hash, as in the seed].
    pub balance: Balance,
    /// More options for every node (e.g. `--cleanup-interval 5s`).
    pub node_args: Vec<OsString>,
    /// Extra environment for every node (e.g. `RUST_LOG=debug`).
    pub node_env: Vec<(OsString, OsString)>,
    /// Where the temp dirs are created [default: the system temp dir].
    pub base_dir: Option<PathBuf>,
    /// How long each process gets to become healthy [default: 20 s].
    pub ready_timeout: Duration,
    /// nginx `worker_connections` [default: 20000].
    pub worker_connections: u32,
    /// nginx executable [default: found on PATH or in /usr/sbin].
    pub nginx_program: Option<PathBuf>,
    /// redis-server executable [default: found on PATH].
    pub redis_program: Option<PathBuf>,
    /// Start every process in its own process group (for `wscluster up`,
    /// whose processes outlive it and must not get the terminal's Ctrl-C).
    pub process_group: bool,
}

impl ClusterOptions {
    /// Defaults, with the nodes run from `node_program` (a wsnode path, or a [`NodeProgram`]).
    pub fn new(node_program: impl Into<NodeProgram>) -> ClusterOptions {
        ClusterOptions {
            node_program: node_program.into(),
            nodes: 3,
            redis: true,
            redis_port: PortChoice::Any,
            node_port: PortChoice::Any,
            nginx_port: PortChoice::Any,
            balance: Balance::IpHash,
            node_args: Vec::new(),
            node_env: Vec::new(),
            base_dir: None,
            ready_timeout: Duration::from_secs(20),
            worker_connections: 20_000,
            nginx_program: None,
            redis_program: None,
            process_group: false,
        }
    }

    /// Impossible combinations, found before anything starts.
    pub fn validate(&self) -> Result<(), ClusterError> {
        if self.nodes == 0 || self.nodes > MAX_NODES {
            return Err(ClusterError::Invalid(format!(
                "--nodes must be 1..={MAX_NODES}, not {}",
                self.nodes
            )));
        }
        let mut fixed: Vec<(u16, String)> = Vec::new();
        if let PortChoice::Fixed(p) = self.node_port {
            let last = usize::from(p) + self.nodes - 1;
            if p == 0 || last > usize::from(u16::MAX) {
                return Err(ClusterError::Invalid(format!(
                    "--node-port {p} with {} nodes needs ports {p}..={last}: choose a lower port",
                    self.nodes
                )));
            }
            for i in 0..self.nodes {
                fixed.push((p + i as u16, format!("node{}", i + 1)));
            }
        }
        if let PortChoice::Fixed(p) = self.nginx_port {
            fixed.push((p, "nginx".into()));
        }
        if let (true, PortChoice::Fixed(p)) = (self.redis, self.redis_port) {
            fixed.push((p, "redis".into()));
        }
        for (i, (p, a)) in fixed.iter().enumerate() {
            if let Some((_, b)) = fixed[i + 1..].iter().find(|(q, _)| q == p) {
                return Err(ClusterError::Invalid(format!(
                    "{a} and {b} would both use port {p}: give them different ports"
                )));
            }
        }
        for a in &self.node_args {
            let a = a.to_string_lossy();
            let name = a.split('=').next().unwrap_or_default();
            if matches!(name, "--listen" | "--node-id" | "--redis") {
                return Err(ClusterError::Invalid(format!(
                    "{name} is set by the cluster for each node; use --node-port, --nodes or --no-redis instead"
                )));
            }
        }
        Ok(())
    }
}

impl ClusterOptions {
    /// Everything that can be checked before starting anything (options,
    /// programs, fixed ports), so a typo does not cost a start and a
    /// teardown. Returns the nginx and redis-server programs to run (the
    /// latter empty without Redis).
    pub fn preflight(&self) -> Result<(PathBuf, PathBuf), ClusterError> {
        self.validate()?;
        let nginx = given_or_found(self.nginx_program.as_deref(), "nginx")?;
        let redis = if self.redis {
            given_or_found(self.redis_program.as_deref(), "redis-server")?
        } else {
            PathBuf::new()
        };
        check_program("wsnode", &self.node_program.path)?;
        self.check_fixed_ports()?;
        Ok((nginx, redis))
    }

    /// Fixed ports must be free before anything starts.
    fn check_fixed_ports(&self) -> Result<(), ClusterError> {
        if let (true, PortChoice::Fixed(p)) = (self.redis, self.redis_port) {
            crate::ports::ensure_free(p, "redis-server", "--redis-port")?;
        }
        for i in 0..self.nodes {
            if let PortChoice::Fixed(p) = self.node_port.nth(i as u16) {
                crate::ports::ensure_free(p, &format!("node{}", i + 1), "--node-port")?;
            }
        }
        if let PortChoice::Fixed(p) = self.nginx_port {
            crate::ports::ensure_free(p, "nginx", "--nginx-port")?;
        }
        Ok(())
    }
}

/// A running local cluster; every process stops when it is dropped
/// (nginx first, then the nodes, then Redis).
pub struct LocalCluster {
    // Field order is drop order.
    nginx: NginxServer,
    nodes: Vec<NodeProcess>,
    redis: Option<RedisServer>,
    notes: Vec<String>,
}

impl LocalCluster {
    /// Start Redis, the nodes and nginx, each healthy before the next starts.
    pub fn start(opts: ClusterOptions) -> Result<LocalCluster, ClusterError> {
        let (nginx_program, redis_program) = opts.preflight()?;
        let mut notes = Vec::new();
        let redis = if opts.redis {
            let mut b = RedisServer::builder()
                .port_choice(opts.redis_port)
                .program(&redis_program)
                .process_group(opts.process_group);
            if let Some(dir) = &opts.base_dir {
                b = b.base_dir(dir);
            }
            let r = b.start()?;
            note_moved(&mut notes, "redis", opts.redis_port, r.port());
            Some(r)
        } else {
            None
        };
        let mut nodes = Vec::with_capacity(opts.nodes);
        for i in 0..opts.nodes {
            if process::cancel_requested() {
                return Err(ClusterError::Cancelled);
            }
            let name = format!("node{}", i + 1);
            let choice = opts.node_port.nth(i as u16);
            let mut b = NodeProcess::builder(opts.node_program.clone())
                .node_id(&name)
                .port(choice)
                .args(&opts.node_args)
                .ready_timeout(opts.ready_timeout)
                .process_group(opts.process_group);
            for (k, v) in &opts.node_env {
                b = b.env(k, v);
            }
            if let Some(r) = &redis {
                b = b.redis(r.url());
            }
            if let Some(dir) = &opts.base_dir {
                b = b.base_dir(dir);
            }
            let node = b.start()?;
            note_moved(&mut notes, &name, choice, node.port());
            nodes.push(node);
        }
        let mut b = NginxServer::builder()
            .program(nginx_program)
            .port(opts.nginx_port)
            .upstreams(nodes.iter().map(NodeProcess::addr))
            .balance(opts.balance)
            .worker_connections(opts.worker_connections)
            .ready_timeout(opts.ready_timeout)
            .process_group(opts.process_group);
        if let Some(dir) = &opts.base_dir {
            b = b.base_dir(dir);
        }
        let nginx = b.start()?;
        note_moved(&mut notes, "nginx", opts.nginx_port, nginx.port());
        Ok(LocalCluster {
            nginx,
            nodes,
            redis,
            notes,
        })
    }

    pub fn nginx(&self) -> &NginxServer {
        &self.nginx
    }

    pub fn nginx_mut(&mut self) -> &mut NginxServer {
        &mut self.nginx
    }

    pub fn nodes(&self) -> &[NodeProcess] {
        &self.nodes
    }

    pub fn nodes_mut(&mut self) -> &mut [NodeProcess] {
        &mut self.nodes
    }

    /// Node `i` (0-based: `node(0)` is node1). Panics on a bad index, like slicing.
    pub fn node(&self, i: usize) -> &NodeProcess {
        &self.nodes[i]
    }

    pub fn node_mut(&mut self, i: usize) -> &mut NodeProcess {
        &mut self.nodes[i]
    }

    pub fn redis(&self) -> Option<&RedisServer> {
        self.redis.as_ref()
    }

    pub fn redis_mut(&mut self) -> Option<&mut RedisServer> {
        self.redis.as_mut()
    }

    /// nginx's `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.nginx.url()
    }

    /// `ws://127.0.0.1:NGINX_PORT/ws/chat[?QUERY]`: the load-balanced entry point.
    pub fn ws_url(&self, query: &str) -> String {
        self.nginx.ws_url(query)
    }

    /// Preferred ports that were busy, and where the process went instead.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Every pid of the cluster (nginx workers included).
    pub fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self.redis.iter().filter_map(RedisServer::pid).collect();
        pids.extend(self.nodes.iter().filter_map(NodeProcess::pid));
        pids.extend(self.nginx.pid());
        pids.extend(self.nginx.worker_pids());
        pids
    }

    /// Stop everything gracefully (nginx, then the nodes with SIGTERM, then Redis).
    pub fn stop(&mut self) {
        self.nginx.stop();
        for n in &mut self.nodes {
            n.terminate();
        }
        if let Some(r) = &mut self.redis {
            r.stop();
        }
    }

    /// Let every process outlive this handle (for `wscluster up`) and describe
    /// them for the state file. Processes that died meanwhile are an error
    /// (and the others are stopped, as on any failed start).
    pub fn detach(self) -> Result<ClusterState, ClusterError> {
        let mut members = Vec::new();
        if let Some(r) = &self.redis {
            members.push(member(
                "redis",
                Role::Redis,
                r.port(),
                r.url(),
                r.pid(),
                r.dir(),
                r.log_path(),
                (r.argv(), Vec::new()),
            )?);
        }
        for n in &self.nodes {
            members.push(member(
                n.node_id(),
                Role::Node,
                n.port(),
                n.url(),
                n.pid(),
                n.dir(),
                n.log_path(),
                (n.argv(), n.env()),
            )?);
        }
        let ng = &self.nginx;
        members.push(member(
            "nginx",
            Role::Nginx,
            ng.port(),
            ng.url(),
            ng.pid(),
            ng.dir(),
            ng.error_log_path(),
            (ng.argv(), Vec::new()),
        )?);
        let state = ClusterState {
            version: crate::state_file::VERSION,
            created_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            balance: ng.balance().name().to_string(),
            members,
        };
        let LocalCluster {
            nginx,
            nodes,
            redis,
            notes: _,
        } = self;
        nginx.detach();
        for n in nodes {
            n.detach();
        }
        if let Some(r) = redis {
            r.detach();
        }
        Ok(state)
    }
}

#[allow(clippy::too_many_arguments)]
fn member(
    name: &str,
    role: Role,
    port: u16,
    url: String,
    pid: Option<u32>,
    dir: &std::path::Path,
    log: PathBuf,
    (argv, env): (Vec<OsString>, Vec<(OsString, OsString)>),
) -> Result<Member, ClusterError> {
    let s = |o: &OsString| o.to_string_lossy().into_owned();
    let process = pid
        .and_then(ProcessId::of)
        .ok_or_else(|| ClusterError::Exited {
            what: name.to_string(),
            status: "gone".into(),
            log: crate::files::log_tail(&log),
        })?;
    Ok(Member {
        name: name.to_string(),
        role,
        port,
        url,
        process,
        dir: dir.to_path_buf(),
        log,
        argv: argv.iter().map(s).collect(),
        env: env.iter().map(|(k, v)| (s(k), s(v))).collect(),
    })
}

fn note_moved(notes: &mut Vec<String>, what: &str, choice: PortChoice, got: u16) {
    match choice {
        PortChoice::Prefer(p) if p != got => {
            notes.push(format!("port {p} was busy: {what} is on {got}"))
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        let ok = ClusterOptions::new("/bin/true");
        assert!(ok.validate().is_ok());
        let mut o = ok.clone();
        o.nodes = 0;
        assert!(o.validate().is_err());
        let mut o = ok.clone();
        o.node_port = PortChoice::Fixed(65534);
        assert!(
            o.validate()
                .unwrap_err()
                .to_string()
                .contains("65534..=65536")
        );
        let mut o = ok.clone();
        o.node_port = PortChoice::Fixed(9001);
        o.nginx_port = PortChoice::Fixed(9002);
        assert!(
            o.validate()
                .unwrap_err()
                .to_string()
                .contains("node2 and nginx")
        );
        let mut o = ok.clone();
        o.node_args = vec!["--listen=127.0.0.1:1".into()];
        assert!(o.validate().unwrap_err().to_string().contains("--listen"));
        let mut o = ok;
        o.node_args = vec!["--cleanup-interval".into(), "5s".into()];
        assert!(o.validate().is_ok());
    }
}
