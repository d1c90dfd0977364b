//! A real redis-server process on a loopback port, in its own temp dir.
//!
//! Tests need a Redis they can stop and restart (outage scenarios), and
//! `wscluster up` needs one that outlives it; both use this handle. Data is
//! never persisted (`--save ""`, no AOF): a restart starts empty.

use crate::error::{ClusterError, io_err};
use crate::files::log_tail;
use crate::ports::{self, PortChoice};
use crate::process;
use crate::programs::given_or_found;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long redis-server gets to answer PING after it was started.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Options for [`RedisServer::builder`].
#[derive(Debug, Clone)]
pub struct RedisBuilder {
    /// The redis-server executable [default: found on PATH].
    program: Option<PathBuf>,
    /// How the port is chosen [default: any free port, retried if taken meanwhile].
    port: PortChoice,
    /// Where its temp dir is created [default: the system temp dir].
    base_dir: Option<PathBuf>,
    /// Start it in its own process group, so a Ctrl-C meant for our
    /// terminal does not reach it (for processes that outlive `wscluster up`).
    process_group: bool,
}

impl RedisBuilder {
    pub fn program(mut self, path: impl Into<PathBuf>) -> Self {
        self.program = Some(path.into());
        self
    }
    /// Exactly this port (fails if busy).
    pub fn port(mut self, port: u16) -> Self {
        self.port = PortChoice::Fixed(port);
        self
    }
    pub fn port_choice(mut self, port: PortChoice) -> Self {
        self.port = port;
        self
    }
    pub fn base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.base_dir = Some(dir.into());
        self
    }
    pub fn process_group(mut self, yes: bool) -> Self {
        self.process_group = yes;
        self
    }

    /// Start it and wait until it answers PING.
    pub fn start(self) -> Result<RedisServer, ClusterError> {
        let program = given_or_found(self.program.as_deref(), "redis-server")?;
        let dir = crate::files::temp_dir(self.base_dir.as_deref(), "wsbench-redis-")?;
        let mut server = RedisServer {
            child: None,
            port: 0,
            dir,
            program,
            process_group: self.process_group,
        };
        if let PortChoice::Fixed(port) = self.port {
            ports::ensure_free(port, "redis-server", "--redis-port")?;
            server.port = port;
            server.child = Some(server.spawn()?);
            return Ok(server);
        }
        // A port taken between probing and binding makes redis exit: retry.
        let mut first = self.port.first();
        let mut last = None;
        for _ in 0..5 {
            server.port = match first.take() {
                Some(p) => p,
                None => ports::free_port().map_err(io_err("free port"))?,
            };
            match server.spawn() {
                Ok(child) => {
                    server.child = Some(child);
                    return Ok(server);
                }
                // Only an early exit can be a port race; anything else is final.
                Err(e @ ClusterError::Exited { .. }) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| ClusterError::Invalid("no free port for redis-server".into())))
    }
}

/// A running redis-server; stopped (SIGKILL) and its dir removed on drop.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    program: PathBuf,
    process_group: bool,
}

impl RedisServer {
    /// Options: program, port, base dir, process group.
    pub fn builder() -> RedisBuilder {
        RedisBuilder {
            program: None,
            port: PortChoice::Any,
            base_dir: None,
            process_group: false,
        }
    }

    /// Start on a free port.
    pub fn start() -> Result<RedisServer, ClusterError> {
        RedisServer::builder().start()
    }

    /// Start on `port` (for `wscluster up`, which prefers 6379).
    pub fn start_on(port: u16) -> Result<RedisServer, ClusterError> {
        RedisServer::builder().port(port).start()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Its log file (`redis.log` in its dir; warnings and up).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// Stop the server (SIGKILL, like a crash) and wait for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::kill_child(&mut child);
        }
    }

    /// Start it again on the same port (after [`stop`](Self::stop)); its data is gone.
    pub fn restart(&mut self) -> Result<(), ClusterError> {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.spawn() {
                Ok(child) => {
                    self.child = Some(child);
                    return Ok(());
                }
                // The port can stay busy for a moment after the kill.
                Err(_) if Instant::now() < deadline && !process::cancel_requested() => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Run one command through a raw RESP connection; returns the reply's first line.
    pub fn command(&self, args: &[&str]) -> std::io::Result<String> {
        let mut s = TcpStream::connect_timeout(&self.addr(), Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes())?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line)?;
        Ok(line.trim_end().to_string())
    }

    /// Let the process outlive this handle (for `wscluster up`): nothing is
    /// stopped or removed on drop. Returns its pid and dir.
    pub fn detach(mut self) -> (Option<u32>, PathBuf) {
        let pid = self.child.take().map(|c| c.id());
        self.dir.disable_cleanup(true);
        (pid, self.dir.path().to_path_buf())
    }

    /// The command line that starts it (program first): what `wscluster start`
    /// runs again for a stopped member.
    pub fn argv(&self) -> Vec<OsString> {
        let dir = self.dir.path();
        let mut v: Vec<OsString> = vec![self.program.clone().into()];
        v.extend(
            [
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--protected-mode",
                "yes",
                "--loglevel",
                "warning",
            ]
            .map(OsString::from),
        );
        v.extend(["--dir".into(), dir.into()]);
        v.extend(["--logfile".into(), dir.join("redis.log").into()]);
        v
    }

    fn spawn(&self) -> Result<Child, ClusterError> {
        let port = self.port;
        let dir = self.dir.path();
        let argv = self.argv();
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.process_group {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let mut child = cmd.spawn().map_err(|source| ClusterError::Io {
            what: format!("start {}", self.program.display()),
            source,
        })?;
        let what = format!("redis-server on port {port}");
        let addr = self.addr();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(ClusterError::Exited {
                    what,
                    status: status.to_string(),
                    log: log_tail(&dir.join("redis.log")),
                });
            }
            if ping(addr) {
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
                    secs: READY_TIMEOUT.as_secs(),
                    detail: "no PONG".into(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether a Redis at `addr` answers PING within a second.
pub fn ping(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(1000)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).is_ok() && line.starts_with("+PONG")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_answers_restarts_and_stops() {
        let mut r = RedisServer::start().expect("redis-server (scripts/test.sh installs it)");
        assert_eq!(r.command(&["SET", "k", "v"]).unwrap(), "+OK");
        assert_eq!(r.command(&["GET", "k"]).unwrap(), "$1");
        r.stop();
        assert!(r.command(&["PING"]).is_err(), "stopped");
        r.restart().unwrap();
        assert_eq!(r.command(&["PING"]).unwrap(), "+PONG");
        assert_eq!(
            r.command(&["GET", "k"]).unwrap(),
            "$-1",
            "a restart loses the data"
        );
        let pid = r.pid().unwrap();
        let dir = r.dir().to_path_buf();
        drop(r);
        assert!(
            process::ProcessId::of(pid).is_none(),
            "redis-server {pid} left running"
        );
        assert!(!dir.exists(), "temp dir removed");
    }

    #[test]
    fn busy_port_is_a_clear_error() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let err = RedisServer::start_on(port).err().expect("port is busy");
        assert!(
            matches!(err, ClusterError::PortBusy { port: p, .. } if p == port),
            "{err}"
        );
    }

    #[test]
    fn missing_program_is_a_clear_error() {
        let err = RedisServer::builder()
            .program("/nonexistent/redis-server")
            .start()
            .err()
            .expect("no such program");
        assert!(
            err.to_string().contains("/nonexistent/redis-server"),
            "{err}"
        );
    }
}
