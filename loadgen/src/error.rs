//! The library's error type and how each kind maps to an exit code.
//!
//! The exit code is part of the interface (CI scripts branch on it), so the
//! mapping lives in one place: 2 for anything the user can fix in the
//! command line, 3 when the target cannot be reached at all, 1 otherwise.

use crate::config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot reach the target: {0}")]
    Unreachable(String),
    #[error("embedded node: {0}")]
    Node(String),
    #[error("worker: {0}")]
    Worker(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
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
            Error::Unreachable(_) => 3,
            _ => 1,
        }
    }
}
