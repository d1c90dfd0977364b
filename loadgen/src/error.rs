//! The library's error type and how each kind maps to an exit code.
//!
//! The exit code is part of the interface (CI scripts branch on it), so the
//! mapping lives in one place: 2 for anything the user can fix in the
//! command line, 3 when the target (or enough agents) cannot be reached at
//! all, 1 otherwise.

use crate::config::error::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad option: exit 2.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No WebSocket could be opened to a target: exit 3.
    #[error("cannot reach the target: {0}")]
    Unreachable(String),
    /// The embedded node could not start or run.
    #[error("embedded node: {0}")]
    Node(String),
    /// A `--workers` process failed or could not be reached.
    #[error("worker: {0}")]
    Worker(String),
    /// Fewer agents than `--agents` answered the coordinator in time: exit 3.
    #[error("agents: {0}")]
    NoAgents(String),
    /// The coordinator (Redis) or an agent failed.
    #[error("agents: {0}")]
    Agents(String),
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// An output (`--json`, `--out`) could not be produced.
    #[error("{what}: {why}")]
    Output { what: String, why: String },
    /// A task of the run itself failed (a bug: it panicked).
    #[error("the {0} task failed: {1}")]
    Task(&'static str, tokio::task::JoinError),
}

impl Error {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }

    /// Exit code documented in `--help`.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) => 2,
            Error::Unreachable(_) | Error::NoAgents(_) => 3,
            _ => 1,
        }
    }
}
