//! nginx as a plain process: the load balancer in front of the nodes,
//! started on a free port with a config from `conf`, stopped on drop.

use super::conf::{Balance, NginxConfig};
use crate::error::{ClusterError, io_err};
use crate::ports::{self, PortChoice};
use crate::process;
use crate::programs::given_or_found;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Options for [`NginxServer::builder`].
#[derive(Debug, Clone)]
pub struct NginxBuilder {
    /// The nginx executable [default: found on PATH or in /usr/sbin].
    program: Option<PathBuf>,
    /// How the listening port is chosen [default: any free port].
    port: PortChoice,
    /// The nodes behind it.
    upstreams: Vec<SocketAddr>,
    /// [default: ip_hash, as in the seed].
    balance: Balance,
    /// [default: 20000].
    worker_connections: u32,
    /// Where its temp dir is created [default: the system temp dir].
    base_dir: Option<PathBuf>,
    /// How long it gets to answer `/nginx-health` [default: 15 s].
    ready_timeout: Duration,
    /// Own process group, so a Ctrl-C meant for our terminal does not reach it.
    process_group: bool,
    /// A config of the caller's instead of the generated one (see [`NginxBuilder::config_text`]).
    custom: Option<String>,
}

impl NginxBuilder {
    /// Run this config instead of the generated one (to test a deploy config
    /// such as `nginx-lb.conf`): `@PORT@` becomes the chosen port and
    /// `@PREFIX@` the server's dir. It must not set `daemon` (nginx runs with
    /// `-g 'daemon off;'`, as in the official image) and must answer
    /// `GET /nginx-health` with 200.
    pub fn config_text(mut self, text: impl Into<String>) -> Self {
        self.custom = Some(text.into());
        self
    }
    pub fn program(mut self, path: impl Into<PathBuf>) -> Self {
        self.program = Some(path.into());
        self
    }
    pub fn port(mut self, port: PortChoice) -> Self {
        self.port = port;
        self
    }
    pub fn upstreams(mut self, nodes: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.upstreams = nodes.into_iter().collect();
        self
    }
    pub fn balance(mut self, b: Balance) -> Self {
        self.balance = b;
        self
    }
    pub fn worker_connections(mut self, n: u32) -> Self {
        self.worker_connections = n;
        self
    }
    pub fn base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.base_dir = Some(dir.into());
        self
    }
    pub fn ready_timeout(mut self, t: Duration) -> Self {
        self.ready_timeout = t;
        self
    }
    pub fn process_group(mut self, yes: bool) -> Self {
        self.process_group = yes;
        self
    }

    /// Write the config, start nginx and wait until it answers.
    pub fn start(self) -> Result<NginxServer, ClusterError> {
        let program = given_or_found(self.program.as_deref(), "nginx")?;
        let dir = crate::files::temp_dir(self.base_dir.as_deref(), "wsbench-nginx-")?;
        std::fs::create_dir(dir.path().join("tmp"))
            .map_err(io_err(format!("create {}/tmp", dir.path().display())))?;
        let mut server = NginxServer {
            child: None,
            config: NginxConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                upstreams: self.upstreams.clone(),
                balance: self.balance,
                worker_connections: self.worker_connections,
                prefix: dir.path().to_path_buf(),
            },
            dir,
            program,
            spec: self,
        };
        if let PortChoice::Fixed(p) = server.spec.port {
            ports::ensure_free(p, "nginx", "--nginx-port")?;
            server.config.listen.set_port(p);
            server.child = Some(server.spawn()?);
            return Ok(server);
        }
        // A port taken between probing and binding makes nginx exit: retry on another.
        let mut first = server.spec.port.first();
        let mut last = None;
        for _ in 0..5 {
            let port = match first.take() {
                Some(p) => p,
                None => ports::free_port().map_err(io_err("free port"))?,
            };
            server.config.listen.set_port(port);
            match server.spawn() {
                Ok(child) => {
                    server.child = Some(child);
                    return Ok(server);
                }
                Err(e @ ClusterError::Exited { .. }) if e.to_string().contains("in use") => {
                    last = Some(e)
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| ClusterError::Invalid("no free port for nginx".into())))
    }
}

/// A running nginx (master and worker); stopped and its dir removed on drop.
pub struct NginxServer {
    child: Option<Child>,
    config: NginxConfig,
    dir: tempfile::TempDir,
    program: PathBuf,
    spec: NginxBuilder,
}

impl NginxServer {
    /// Options: upstreams, port, balance, worker connections, program.
    pub fn builder() -> NginxBuilder {
        NginxBuilder {
            program: None,
            port: PortChoice::Any,
            upstreams: Vec::new(),
            balance: Balance::IpHash,
            worker_connections: 20_000,
            base_dir: None,
            ready_timeout: Duration::from_secs(15),
            process_group: false,
            custom: None,
        }
    }

    /// nginx on a free port in front of `upstreams`.
    pub fn start(
        upstreams: impl IntoIterator<Item = SocketAddr>,
        balance: Balance,
    ) -> Result<NginxServer, ClusterError> {
        NginxServer::builder()
            .upstreams(upstreams)
            .balance(balance)
            .start()
    }

    pub fn port(&self) -> u16 {
        self.config.listen.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.config.listen
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.config.listen)
    }

    /// `ws://127.0.0.1:PORT/ws/chat[?QUERY]`
    pub fn ws_url(&self, query: &str) -> String {
        crate::node::ws_url(self.port(), query)
    }

    /// The master's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The worker processes' pids.
    pub fn worker_pids(&self) -> Vec<u32> {
        self.pid().map(process::children_of).unwrap_or_default()
    }

    pub fn balance(&self) -> Balance {
        self.config.balance
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn conf_path(&self) -> PathBuf {
        self.dir.path().join("nginx.conf")
    }

    pub fn error_log_path(&self) -> PathBuf {
        self.dir.path().join("error.log")
    }

    pub fn access_log_path(&self) -> PathBuf {
        self.dir.path().join("access.log")
    }

    /// GET `path` through nginx (5 s timeout): status and body.
    pub fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        crate::http::get(self.addr(), path, Duration::from_secs(5))
    }

    /// Fast shutdown (SIGTERM), SIGKILL after 10 s; workers never outlive it.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        process::stop_child(&mut child, Duration::from_secs(10))
    }

    /// Reload the configuration the way `nginx -s reload` does: SIGHUP to
    /// the master, which starts new workers and lets the old ones finish
    /// their connections. False when nginx is not running.
    pub fn reload(&self) -> bool {
        self.pid()
            .is_some_and(|pid| process::signal(pid, libc::SIGHUP))
    }

    /// SIGKILL the master and its workers.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        process::kill_child(&mut child)
    }

    /// Let the process outlive this handle (for `wscluster up`). Returns its pid and dir.
    pub fn detach(mut self) -> (Option<u32>, PathBuf) {
        let pid = self.child.take().map(|c| c.id());
        self.dir.disable_cleanup(true);
        (pid, self.dir.path().to_path_buf())
    }

    /// The command line that starts it (program first).
    pub fn argv(&self) -> Vec<OsString> {
        let mut v: Vec<OsString> = vec![self.program.clone().into()];
        v.extend(["-p".into(), self.dir.path().into()]);
        v.extend(["-c".into(), self.conf_path().into()]);
        v.extend(["-e".into(), self.error_log_path().into()]);
        if self.spec.custom.is_some() {
            v.extend(["-g".into(), "daemon off;".into()]);
        }
        v
    }

    fn spawn(&self) -> Result<Child, ClusterError> {
        let conf = self.conf_path();
        let text = match &self.spec.custom {
            Some(t) => t
                .replace("@PORT@", &self.port().to_string())
                .replace("@PREFIX@", &self.dir.path().to_string_lossy()),
            None => self.config.render()?,
        };
        std::fs::write(&conf, text).map_err(io_err(format!("write {}", conf.display())))?;
        let err_log = self.error_log_path();
        let log_start = std::fs::metadata(&err_log).map(|m| m.len()).unwrap_or(0);
        let argv = self.argv();
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.spec.process_group {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let what = format!("nginx on port {}", self.port());
        let mut child = cmd.spawn().map_err(|source| ClusterError::Io {
            what: format!("start {}", self.program.display()),
            source,
        })?;
        let deadline = Instant::now() + self.spec.ready_timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read(&err_log).unwrap_or_default();
                let from = usize::try_from(log_start).unwrap_or(0).min(log.len());
                return Err(ClusterError::Exited {
                    what,
                    status: status.to_string(),
                    log: crate::files::tail_text(&log[from..]),
                });
            }
            if matches!(
                crate::http::get(self.addr(), "/nginx-health", Duration::from_secs(2)),
                Ok((200, _))
            ) {
                return Ok(child);
            }
            if process::cancel_requested() {
                process::kill_child(&mut child);
                return Err(ClusterError::Cancelled);
            }
            if Instant::now() >= deadline {
                process::kill_child(&mut child);
                return Err(ClusterError::NotReady {
                    what,
                    secs: self.spec.ready_timeout.as_secs(),
                    detail: format!(
                        "/nginx-health never answered 200; see {}",
                        err_log.display()
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for NginxServer {
    fn drop(&mut self) {
        self.kill();
    }
}
