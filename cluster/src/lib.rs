//! Real infrastructure as plain processes on loopback: redis-server, nginx
//! and wsnode nodes, each in its own temp dir on a free port.
//!
//! Machines without a Docker engine still need the seed's three-node setup,
//! and tests need real Redis and real nginx rather than mocks. This crate is
//! both: the machinery behind `wsnode cluster up|down|status`, and the test
//! harness of the cluster tests. Every process handle stops its process when
//! dropped, so a failing test leaves nothing behind.

pub mod cli;
pub mod ports;
pub mod redis;

pub use redis::RedisServer;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{program} not found: install it (scripts/test.sh installs redis-server and nginx)")]
    NotInstalled { program: &'static str },
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
}

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClusterError {
    let what = what.into();
    move |source| ClusterError::Io { what, source }
}

/// Find an executable on PATH or in the usual system directories.
pub fn find_program(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"].map(Into::into))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
