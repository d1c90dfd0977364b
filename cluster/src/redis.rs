//! A real redis-server process on a free loopback port, in a temp dir.

use crate::{ClusterError, find_program, io_err, ports};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running redis-server; stopped (SIGKILL) and its dir removed on drop.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Start on a free port.
    pub fn start() -> Result<RedisServer, ClusterError> {
        let dir = tempfile::Builder::new()
            .prefix("wsbench-redis-")
            .tempdir()
            .map_err(io_err("temp dir"))?;
        // A port taken between probing and binding makes redis exit: retry.
        let mut last = None;
        for _ in 0..5 {
            let port = ports::free_port().map_err(io_err("free port"))?;
            match spawn(port, dir.path()) {
                Ok(child) => {
                    return Ok(RedisServer {
                        child: Some(child),
                        port,
                        dir,
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(ClusterError::NotReady {
            what: "redis-server".into(),
            secs: 0,
            detail: "no port".into(),
        }))
    }

    /// Start on `port` (for `cluster up`, which prefers 6379).
    pub fn start_on(port: u16) -> Result<RedisServer, ClusterError> {
        let dir = tempfile::Builder::new()
            .prefix("wsbench-redis-")
            .tempdir()
            .map_err(io_err("temp dir"))?;
        let child = spawn(port, dir.path())?;
        Ok(RedisServer {
            child: Some(child),
            port,
            dir,
        })
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

    /// Stop the server (SIGKILL, like a crash) and wait for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it again on the same port (after [`stop`](Self::stop)); its data is gone.
    pub fn restart(&mut self) -> Result<(), ClusterError> {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match spawn(self.port, self.dir.path()) {
                Ok(child) => {
                    self.child = Some(child);
                    return Ok(());
                }
                // The port can stay busy for a moment after the kill.
                Err(_) if Instant::now() < deadline => {
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
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn(port: u16, dir: &Path) -> Result<Child, ClusterError> {
    let bin = find_program("redis-server").ok_or(ClusterError::NotInstalled {
        program: "redis-server",
    })?;
    let mut child = Command::new(bin)
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args([
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--loglevel",
            "warning",
        ])
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(io_err("start redis-server"))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(ClusterError::NotReady {
                what: format!("redis-server on port {port}"),
                secs: 0,
                detail: format!("exited with {status}"),
            });
        }
        if ping(addr) {
            return Ok(child);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ClusterError::NotReady {
                what: format!("redis-server on port {port}"),
                secs: 10,
                detail: "no PONG".into(),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ping(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
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
        drop(r);
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists() || {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                stat.contains(") Z ")
            }
        );
    }
}
