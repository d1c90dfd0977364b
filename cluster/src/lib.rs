//! Real infrastructure as plain processes on loopback: redis-server, nginx
//! and wsnode nodes, each in its own temp dir on a free port.
//!
//! Machines without a Docker engine still need the seed's three-node setup,
//! and tests need real Redis and real nginx rather than mocks. This crate is
//! both: the machinery behind `wsnode cluster up|down|status`, and the test
//! harness of the cluster tests. Every process handle stops its process when
//! dropped, so a failing test leaves nothing behind.
//!
//! - [`RedisServer`], [`NodeProcess`], [`NginxServer`]: one process each.
//! - [`LocalCluster`]: Redis, N nodes and nginx in front, started in order.
//! - [`state`], [`member`]: what `cluster up` records so a later
//!   `down`/`status`/`stop`/`start` finds it.

pub mod cli;
pub mod http;
pub mod local;
pub mod member;
pub mod nginx;
pub mod node;
pub mod ports;
pub mod process;
pub mod redis;
pub mod state;

pub use local::{ClusterOptions, LocalCluster};
pub use nginx::{Balance, NginxServer};
pub use node::NodeProcess;
pub use ports::PortChoice;
pub use redis::RedisServer;

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{program} not found: install it (scripts/test.sh installs redis-server and nginx)")]
    NotInstalled { program: &'static str },
    #[error("{program} not found at {}: check the path", path.display())]
    ProgramNotFound {
        program: &'static str,
        path: PathBuf,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{what} did not become ready within {secs} s: {detail}")]
    NotReady {
        what: String,
        secs: u64,
        detail: String,
    },
    #[error("{what} exited ({status}) before it became ready{}", fmt_log(log))]
    Exited {
        what: String,
        status: String,
        /// The last lines of its log, which usually say why.
        log: String,
    },
    #[error("port {port} for {what} is busy: free it, or choose another with {option}")]
    PortBusy {
        what: String,
        port: u16,
        option: &'static str,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("interrupted")]
    Cancelled,
}

fn fmt_log(log: &str) -> String {
    if log.trim().is_empty() {
        String::new()
    } else {
        format!("; its log ends with:\n{log}")
    }
}

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClusterError {
    let what = what.into();
    move |source| ClusterError::Io { what, source }
}

/// Find an executable on PATH or in the usual system directories.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"].map(Into::into))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A program path given by the user must exist before we try to run it.
pub(crate) fn check_program(program: &'static str, path: &Path) -> Result<(), ClusterError> {
    if path.is_file() {
        Ok(())
    } else {
        Err(ClusterError::ProgramNotFound {
            program,
            path: path.to_path_buf(),
        })
    }
}

/// A fresh temp dir `PREFIXxxxxxx` under `base` (default: the system temp
/// dir), readable by others: nginx's workers may run as another user.
pub(crate) fn temp_dir(
    base: Option<&Path>,
    prefix: &str,
) -> Result<tempfile::TempDir, ClusterError> {
    use std::os::unix::fs::PermissionsExt;
    let mut b = tempfile::Builder::new();
    b.prefix(prefix)
        .permissions(std::fs::Permissions::from_mode(0o755));
    match base {
        Some(base) => b.tempdir_in(base),
        None => b.tempdir(),
    }
    .map_err(io_err(format!(
        "create a temp dir in {}",
        base.map_or_else(std::env::temp_dir, Path::to_path_buf)
            .display()
    )))
}

/// The last lines of a log file (at most 20 lines, 4 KiB), for error messages.
pub fn log_tail(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| tail_text(&b))
        .unwrap_or_default()
}

/// The last lines of `bytes` (at most 20 lines, 4 KiB), indented for messages.
pub(crate) fn tail_text(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(4096);
    let text = String::from_utf8_lossy(&bytes[start..]);
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(20);
    lines[from..]
        .iter()
        .map(|l| format!("  | {l}\n"))
        .collect::<String>()
        .trim_end()
        .to_string()
}
