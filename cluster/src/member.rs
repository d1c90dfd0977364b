//! One process recorded by `wscluster up`: its health, and starting it again.
//!
//! The seed's failover scenarios stop one container and start it again
//! (`docker stop demo-java-websocket-1`, `docker start ...`). The local
//! equivalent is `wscluster stop node1` / `start node1`, which need the
//! exact command line, environment and dir a member was started with; they
//! are recorded here.

use crate::error::{ClusterError, io_err};
use crate::ports;
use crate::process::{self, ProcessId};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a member is, which decides how its health is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Redis,
    Node,
    Nginx,
}

/// One recorded process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// `redis`, `node1`.., `nginx`.
    pub name: String,
    pub role: Role,
    pub port: u16,
    /// `redis://..`, or `http://..` for nodes and nginx.
    pub url: String,
    pub process: ProcessId,
    /// Its temp dir, removed by `down`.
    pub dir: PathBuf,
    /// Its main log file.
    pub log: PathBuf,
    /// The command line it was started with (program first), for `start`.
    #[serde(default)]
    pub argv: Vec<String>,
    /// Environment it got on top of the caller's.
    #[serde(default)]
    pub env: Vec<(String, String)>,
}

/// A member's condition as `status` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Running and answering (`PONG`, or HTTP 200).
    Healthy,
    /// Running but not answering as it should; the detail says what it answered.
    Unhealthy(String),
    /// Not running.
    Down,
    /// The pid now belongs to another process (which we leave alone).
    Replaced(String),
}

impl Member {
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Is it running, and does it answer its health check?
    pub fn condition(&self) -> Condition {
        if !self.process.is_running() {
            return match ProcessId::of(self.process.pid) {
                Some(other) => Condition::Replaced(other.command()),
                None => Condition::Down,
            };
        }
        match self.probe() {
            Ok(()) => Condition::Healthy,
            Err(detail) => Condition::Unhealthy(detail),
        }
    }

    /// One health check: PING for Redis, `/health` for a node, `/nginx-health` for nginx.
    fn probe(&self) -> Result<(), String> {
        let timeout = Duration::from_secs(3);
        match self.role {
            Role::Redis if crate::redis_server::ping(self.addr()) => Ok(()),
            Role::Redis => Err("no PONG".into()),
            Role::Node | Role::Nginx => {
                let path = if self.role == Role::Node {
                    "/health"
                } else {
                    "/nginx-health"
                };
                match crate::http::get(self.addr(), path, timeout) {
                    Ok((200, _)) => Ok(()),
                    Ok((code, _)) => Err(format!("{path}: HTTP {code}")),
                    Err(e) => Err(format!("{path}: {e}")),
                }
            }
        }
    }

    /// Start a stopped member again with its recorded command line, in its
    /// dir, on its port; wait until it is healthy and record the new process.
    pub fn start(&mut self, ready_timeout: Duration) -> Result<(), ClusterError> {
        if self.process.is_running() {
            return Err(ClusterError::Invalid(format!(
                "{} is already running (pid {})",
                self.name, self.process.pid
            )));
        }
        let Some((program, args)) = self.argv.split_first() else {
            return Err(ClusterError::Invalid(format!(
                "{} was recorded without its command line: run `wscluster down` and `up`",
                self.name
            )));
        };
        if !self.dir.is_dir() {
            return Err(ClusterError::Invalid(format!(
                "{}'s dir {} is gone: run `wscluster down` and `up`",
                self.name,
                self.dir.display()
            )));
        }
        if !ports::is_free(self.port) {
            return Err(ClusterError::PortBusy {
                what: self.name.clone(),
                port: self.port,
                option: "`wscluster down` and `up`",
            });
        }
        let mut cmd = Command::new(program);
        cmd.args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.dir)
            .stdin(Stdio::null());
        let log_start = std::fs::metadata(&self.log).map_or(0, |m| m.len());
        if self.role == Role::Node {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log)
                .map_err(io_err(format!("open {}", self.log.display())))?;
            let err = log
                .try_clone()
                .map_err(io_err(format!("open {}", self.log.display())))?;
            // As at `up`: Redis or not is in the recorded command line only.
            cmd.env_remove("WSNODE_REDIS").stdout(log).stderr(err);
        } else {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let mut child = cmd.spawn().map_err(io_err(format!("start {program}")))?;
        let deadline = Instant::now() + ready_timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read(&self.log).unwrap_or_default();
                let from = usize::try_from(log_start).unwrap_or(0).min(log.len());
                return Err(ClusterError::Exited {
                    what: self.name.clone(),
                    status: status.to_string(),
                    log: crate::files::tail_text(&log[from..]),
                });
            }
            if self.probe().is_ok() {
                break;
            }
            if Instant::now() >= deadline || process::cancel_requested() {
                process::kill_child(&mut child);
                return Err(ClusterError::NotReady {
                    what: self.name.clone(),
                    secs: ready_timeout.as_secs(),
                    detail: format!("see {}", self.log.display()),
                });
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        // Healthy means it has exec'd long ago: its /proc entry is complete.
        self.process = ProcessId::of(child.id()).ok_or_else(|| ClusterError::Exited {
            what: self.name.clone(),
            status: "gone right after start".into(),
            log: crate::files::log_tail(&self.log),
        })?;
        Ok(())
    }
}
