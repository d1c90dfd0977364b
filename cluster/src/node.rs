//! A wsnode process on a loopback port, logging into its own temp dir.
//!
//! The cluster scenarios are about processes: a node is SIGKILLed mid-stream,
//! restarted on the same port, and its log is searched for `WebSocket
//! connected` the way the seed greps `docker logs`. So a node here is a real
//! child process (not an in-process server), its stdout and stderr go to
//! `node.log` in its dir, and that log survives restarts (appended).

use crate::error::{ClusterError, io_err};
use crate::ports::{self, PortChoice};
use crate::process;
use crate::programs::check_program;
use std::ffi::{OsStr, OsString};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The program a node runs: the wsnode executable, or a program that acts as
/// wsnode after some leading arguments (loadgen embeds the same node behind
/// `loadgen __node`), so the harness can start either without a wrapper
/// script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeProgram {
    /// The executable.
    pub path: PathBuf,
    /// Arguments before the node's own options [default: none].
    pub args: Vec<OsString>,
}

impl NodeProgram {
    /// Run `path` with nothing before the node's options.
    pub fn new(path: impl Into<PathBuf>) -> NodeProgram {
        NodeProgram {
            path: path.into(),
            args: Vec::new(),
        }
    }

    /// One more leading argument, e.g. `__node`.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> NodeProgram {
        self.args.push(arg.as_ref().to_owned());
        self
    }
}

impl From<PathBuf> for NodeProgram {
    fn from(path: PathBuf) -> NodeProgram {
        NodeProgram::new(path)
    }
}

impl From<&Path> for NodeProgram {
    fn from(path: &Path) -> NodeProgram {
        NodeProgram::new(path)
    }
}

impl From<&PathBuf> for NodeProgram {
    fn from(path: &PathBuf) -> NodeProgram {
        NodeProgram::new(path)
    }
}

impl From<&str> for NodeProgram {
    fn from(path: &str) -> NodeProgram {
        NodeProgram::new(path)
    }
}

/// Options for [`NodeProcess::builder`].
#[derive(Debug, Clone)]
pub struct NodeBuilder {
    /// The wsnode executable, and any arguments it needs first.
    program: NodeProgram,
    /// `--node-id` [default: `node`].
    node_id: String,
    /// How the `--listen` port is chosen [default: any free port].
    port: PortChoice,
    /// `--redis URL` [default: none, the node's in-memory broker].
    redis: Option<String>,
    /// More wsnode options, passed after ours.
    args: Vec<OsString>,
    /// Extra environment variables (the rest is inherited, `WSNODE_*` included).
    env: Vec<(OsString, OsString)>,
    /// Where its temp dir is created [default: the system temp dir].
    base_dir: Option<PathBuf>,
    /// How long it gets to answer `/health` with 200 [default: 20 s].
    ready_timeout: Duration,
    /// How long `terminate` waits after SIGTERM before SIGKILL [default: 10 s;
    /// wsnode's own `--shutdown-timeout` defaults to 5 s].
    stop_timeout: Duration,
    /// Own process group, so a Ctrl-C meant for our terminal does not reach it.
    process_group: bool,
}

impl NodeBuilder {
    pub fn node_id(mut self, id: impl Into<String>) -> Self {
        self.node_id = id.into();
        self
    }
    pub fn port(mut self, port: PortChoice) -> Self {
        self.port = port;
        self
    }
    pub fn redis(mut self, url: impl Into<String>) -> Self {
        self.redis = Some(url.into());
        self
    }
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
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
    pub fn stop_timeout(mut self, t: Duration) -> Self {
        self.stop_timeout = t;
        self
    }
    pub fn process_group(mut self, yes: bool) -> Self {
        self.process_group = yes;
        self
    }

    /// Start the node and wait until `/health` answers 200.
    pub fn start(self) -> Result<NodeProcess, ClusterError> {
        check_program("wsnode", &self.program.path)?;
        if self.node_id.is_empty() {
            return Err(ClusterError::Invalid(
                "a node needs a non-empty node id".into(),
            ));
        }
        let dir = crate::files::temp_dir(
            self.base_dir.as_deref(),
            &format!("wsbench-{}-", sanitize(&self.node_id)),
        )?;
        let mut node = NodeProcess {
            child: None,
            port: 0,
            dir,
            spec: self,
            last_status: None,
        };
        if let PortChoice::Fixed(p) = node.spec.port {
            ports::ensure_free(p, &format!("node {}", node.spec.node_id), "--node-port")?;
            node.port = p;
            node.child = Some(node.spawn()?);
            return Ok(node);
        }
        // A port taken between probing and binding makes wsnode exit: retry on another.
        let mut first = node.spec.port.first();
        let mut last = None;
        for _ in 0..5 {
            node.port = match first.take() {
                Some(p) => p,
                None => ports::free_port().map_err(io_err("free port"))?,
            };
            match node.spawn() {
                Ok(child) => {
                    node.child = Some(child);
                    return Ok(node);
                }
                Err(e @ ClusterError::Exited { .. }) if e.to_string().contains("in use") => {
                    last = Some(e)
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| ClusterError::Invalid("no free port for a node".into())))
    }
}

/// Keep node ids that are odd for a file name out of paths.
fn sanitize(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(32)
        .collect()
}

/// A running wsnode; SIGKILLed and its dir removed on drop.
pub struct NodeProcess {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    spec: NodeBuilder,
    last_status: Option<ExitStatus>,
}

impl NodeProcess {
    /// Options for a node run from `program` (a wsnode path, or a [`NodeProgram`]).
    pub fn builder(program: impl Into<NodeProgram>) -> NodeBuilder {
        NodeBuilder {
            program: program.into(),
            node_id: "node".into(),
            port: PortChoice::Any,
            redis: None,
            args: Vec::new(),
            env: Vec::new(),
            base_dir: None,
            ready_timeout: Duration::from_secs(20),
            stop_timeout: Duration::from_secs(10),
            process_group: false,
        }
    }

    /// Start `program --listen 127.0.0.1:<free port> --node-id NODE_ID ARGS...`.
    pub fn start<I, S>(
        program: impl Into<NodeProgram>,
        node_id: &str,
        args: I,
    ) -> Result<NodeProcess, ClusterError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        NodeProcess::builder(program)
            .node_id(node_id)
            .args(args)
            .start()
    }

    pub fn node_id(&self) -> &str {
        &self.spec.node_id
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `ws://127.0.0.1:PORT/ws/chat[?QUERY]`
    pub fn ws_url(&self, query: &str) -> String {
        ws_url(self.port, query)
    }

    /// The pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// stdout and stderr of every run of this node, appended.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("node.log")
    }

    /// The whole log so far (empty if unreadable).
    pub fn log(&self) -> String {
        std::fs::read(self.log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.log().lines().map(str::to_owned).collect()
    }

    /// Log lines containing `needle` (like `grep needle | wc -l`).
    pub fn log_count(&self, needle: &str) -> usize {
        self.log().lines().filter(|l| l.contains(needle)).count()
    }

    /// Wait up to `timeout` for a log line containing `needle`; returns the line.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Result<String, ClusterError> {
        let mut found = None;
        process::wait_until(timeout, || {
            found = self
                .log()
                .lines()
                .find(|l| l.contains(needle))
                .map(str::to_owned);
            found.is_some() || process::cancel_requested()
        });
        found.ok_or_else(|| ClusterError::NotReady {
            what: format!("log line {needle:?} from {}", self.spec.node_id),
            secs: timeout.as_secs(),
            detail: format!("not found in {}", self.log_path().display()),
        })
    }

    /// Whether the process is still running (reaps it if it exited).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => true,
            Some(Ok(Some(status))) => {
                self.last_status = Some(status);
                self.child = None;
                false
            }
            _ => false,
        }
    }

    /// Exit status of the last run, once it has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.is_running();
        self.last_status
    }

    /// SIGKILL it (a crash) and reap it.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let status = process::kill_child(child);
        self.child = None;
        self.last_status = status;
        status
    }

    /// SIGTERM it (a graceful shutdown: clients get 1001) and wait; SIGKILL
    /// after the builder's stop timeout.
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let status = process::stop_child(child, self.spec.stop_timeout);
        self.child = None;
        self.last_status = status;
        status
    }

    /// Start it again on the same port with the same options, after it was
    /// killed or terminated (a running node is terminated first).
    pub fn restart(&mut self) -> Result<(), ClusterError> {
        self.terminate();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.spawn() {
                Ok(child) => {
                    self.child = Some(child);
                    return Ok(());
                }
                // The port can stay busy for a moment after the kill.
                Err(e @ ClusterError::Exited { .. })
                    if e.to_string().contains("in use")
                        && Instant::now() < deadline
                        && !process::cancel_requested() =>
                {
                    std::thread::sleep(Duration::from_millis(100))
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// GET `path` from the node (5 s timeout): status and body.
    pub fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        crate::http::get(self.addr(), path, Duration::from_secs(5))
    }

    /// Whether `/health` answers 200 now.
    pub fn is_healthy(&self) -> bool {
        matches!(self.get("/health"), Ok((200, _)))
    }

    /// Let the process outlive this handle (for `wscluster up`). Returns its pid and dir.
    pub fn detach(mut self) -> (Option<u32>, PathBuf) {
        let pid = self.child.take().map(|c| c.id());
        self.dir.disable_cleanup(true);
        (pid, self.dir.path().to_path_buf())
    }

    /// The command line that starts it (program first).
    pub fn argv(&self) -> Vec<OsString> {
        let mut v: Vec<OsString> = vec![self.spec.program.path.clone().into()];
        v.extend(self.spec.program.args.iter().cloned());
        v.push("--listen".into());
        v.push(format!("127.0.0.1:{}", self.port).into());
        v.push("--node-id".into());
        v.push(self.spec.node_id.clone().into());
        if let Some(url) = &self.spec.redis {
            v.push("--redis".into());
            v.push(url.into());
        }
        v.extend(self.spec.args.iter().cloned());
        v
    }

    /// The environment it gets on top of ours.
    pub fn env(&self) -> Vec<(OsString, OsString)> {
        // Plain text in the log file, so it greps like `docker logs`.
        let mut v = vec![("NO_COLOR".into(), "1".into())];
        v.extend(self.spec.env.iter().cloned());
        v
    }

    fn spawn(&self) -> Result<Child, ClusterError> {
        let log_path = self.log_path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io_err(format!("open {}", log_path.display())))?;
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
        let err_log = log
            .try_clone()
            .map_err(io_err(format!("open {}", log_path.display())))?;
        let argv = self.argv();
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            // Redis or not is this handle's choice (`--redis`), never the caller's environment.
            .env_remove("WSNODE_REDIS")
            .envs(self.env())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log);
        if self.spec.process_group {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let what = format!("node {} on port {}", self.spec.node_id, self.port);
        let mut child = cmd.spawn().map_err(|source| ClusterError::Io {
            what: format!("start {}", self.spec.program.path.display()),
            source,
        })?;
        let deadline = Instant::now() + self.spec.ready_timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(ClusterError::Exited {
                    what,
                    status: status.to_string(),
                    log: tail_since(&log_path, log_start),
                });
            }
            if matches!(
                crate::http::get(self.addr(), "/health", Duration::from_secs(2)),
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
                        "/health never answered 200; log:\n{}",
                        tail_since(&log_path, log_start)
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `ws://127.0.0.1:PORT/ws/chat[?QUERY]`
pub(crate) fn ws_url(port: u16, query: &str) -> String {
    if query.is_empty() {
        format!("ws://127.0.0.1:{port}/ws/chat")
    } else {
        format!(
            "ws://127.0.0.1:{port}/ws/chat?{}",
            query.trim_start_matches('?')
        )
    }
}

/// The tail of what was appended to a log file after byte `start`.
fn tail_since(path: &Path, start: u64) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return String::new();
    };
    let from = usize::try_from(start).unwrap_or(0).min(bytes.len());
    crate::files::tail_text(&bytes[from..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_names() {
        assert_eq!(ws_url(8080, ""), "ws://127.0.0.1:8080/ws/chat");
        assert_eq!(
            ws_url(8080, "?session_id=a"),
            "ws://127.0.0.1:8080/ws/chat?session_id=a"
        );
        assert_eq!(sanitize("node/1 x"), "node_1_x");
    }

    #[test]
    fn missing_program_and_a_program_that_exits() {
        let err = NodeProcess::start("/nonexistent/wsnode", "n1", [""; 0])
            .err()
            .expect("missing");
        assert!(matches!(err, ClusterError::ProgramNotFound { .. }), "{err}");

        // `false` exits at once: a clear error with the exit status, no retry loop.
        let Some(f) = crate::programs::find_program("false") else {
            return;
        };
        let err = NodeProcess::start(f, "n1", [""; 0]).err().expect("exits");
        assert!(matches!(err, ClusterError::Exited { .. }), "{err}");
    }
}
